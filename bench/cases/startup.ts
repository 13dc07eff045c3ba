/**
 * Benchmark 5: server start-up time, from spawning `node bindle-server.js` to the first 200
 * from `/healthz` (polled every 2 ms), with 100,000 invoices stored; beside the same start on
 * an empty data directory.
 */
import { writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { freePort } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { installIndex } from '../lib/seed.js';
import { spawnServer } from '../lib/server.js';

/** Milliseconds from spawn to the first healthy /healthz; the server is stopped afterwards. */
async function startupMs(dir: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const server = await spawnServer(dir, [], { port, intervalMs: 2 });
  const ms = performance.now() - started;
  await server.stop();
  return ms;
}

export const startupCase: BenchCase = {
  name: 'startup',
  title: 'server start-up to the first answered /healthz with 100k invoices',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, indexInvoices } = ctx.sizes;
    const seeded = await ctx.seededIndex();
    const full = ctx.dir('startup-full');
    const empty = ctx.dir('startup-empty');
    writeKeyring(full, ctx.keys);
    writeKeyring(empty, ctx.keys);
    installIndex(seeded.path, full);
    // The first start creates the empty store's index and warms the page cache; not measured.
    await startupMs(full);
    await startupMs(empty);
    const withInvoices: number[] = [];
    const withNone: number[] = [];
    for (let r = 0; r < runs; r++) {
      withInvoices.push(await startupMs(full));
      withNone.push(await startupMs(empty));
      ctx.log(`  run ${r + 1}: ${withInvoices.at(-1)?.toFixed(0)} ms with ${indexInvoices} invoices, ${withNone.at(-1)?.toFixed(0)} ms empty`);
    }
    return {
      figures: [
        makeFigure({
          id: 'startup',
          title: `5. Server start-up to first /healthz, ${indexInvoices.toLocaleString('en-US')} invoices`,
          unit: 'ms',
          runs: withInvoices,
          baseline: { title: 'same, empty data directory', runs: withNone },
          target: { on: 'value', op: '<=', bound: 500, text: '≤ 500 ms' },
          notes: ['measured from spawn (Node start included) to the first 200, polling every 2 ms'],
        }),
      ],
    };
  },
};
