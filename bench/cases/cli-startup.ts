/**
 * Benchmark 9: `bindle` CLI start-up, a new process each time as a user runs it: `bindle
 * --version` against `node -e 0` (target ≤ 1.5×), and `bindle --help` and `bindle search`
 * (against a running server with nothing stored) beside it, from spawn to exit.
 */
import { existsSync } from 'node:fs';
import { spawnTracked } from '../lib/cleanup.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { makeFigure } from '../lib/results.js';
import { CLI_BIN, spawnServer } from '../lib/server.js';
import { runCli } from './push-get.js';

/** Wall time of `node -e 0`, the floor every Node program starts from. */
async function nodeFloorMs(): Promise<number> {
  const started = performance.now();
  const child = spawnTracked(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => resolve());
  });
  return performance.now() - started;
}

export const cliStartupCase: BenchCase = {
  name: 'cli-startup',
  title: '`bindle --version`, `--help` and `search` start-up against `node -e 0`',
  async run(ctx: BenchContext): Promise<CaseResult> {
    if (!existsSync(CLI_BIN)) return { figures: [], skipped: `${CLI_BIN} is not built` };
    const runs = Math.max(ctx.sizes.runs * 5, 10);
    const home = ctx.dir('cli-startup-home');
    const server = await spawnServer(ctx.dir('cli-startup-server'));
    try {
      // Warm the page cache; not measured.
      await nodeFloorMs();
      await runCli(home, ['--version']);
      await runCli(home, ['-s', `${server.api}/`, 'search']);
      const floor: number[] = [];
      const version: number[] = [];
      const help: number[] = [];
      const search: number[] = [];
      for (let r = 0; r < runs; r++) {
        floor.push(await nodeFloorMs());
        version.push(await runCli(home, ['--version']));
        help.push(await runCli(home, ['--help']));
        search.push(await runCli(home, ['-s', `${server.api}/`, 'search']));
      }
      ctx.log(`  medians over ${runs} runs measured`);
      const baseline = { title: '`node -e 0`', runs: floor };
      return {
        figures: [
          makeFigure({
            id: 'cli-version',
            title: '9. `bindle --version` start-up',
            unit: 'ms',
            runs: version,
            baseline,
            target: { on: 'ratio', op: '<=', bound: 1.5, text: '≤ 1.5 × `node -e 0`' },
            notes: ['spawn to exit, the installed CLI (client/dist/bindle.cjs, which loads the bundle client/dist/bindle.mjs)'],
          }),
          makeFigure({ id: 'cli-help', title: '9. `bindle --help` start-up', unit: 'ms', runs: help, baseline }),
          makeFigure({ id: 'cli-search', title: '9. `bindle search` on an empty server', unit: 'ms', runs: search, baseline }),
        ],
      };
    } finally {
      await server.stop();
    }
  },
};
