/**
 * boundYoungGeneration (server/young-generation.ts): once bounded, V8's semi-spaces stay at the
 * cap under a load whose survivors would grow them, and the same load grows them once the bound
 * is lifted. Runs in a child process (test/helpers/young-generation-child.ts): the flags it
 * sets are process-wide, and tap's own process has grown its semi-spaces to the maximum.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../helpers/young-generation-child.ts', import.meta.url));

t.test('the semi-spaces stay at the cap while bounded and grow after', (t) => {
  const out = execFileSync(process.execPath, [...process.execArgv, '--max-semi-space-size=64', CHILD], { encoding: 'utf8', timeout: 120_000 });
  const sizes = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { start: number; bounded: number; unbounded: number };
  const mib = (n: number): string => `${n / 2 ** 20} MiB`;
  t.ok(sizes.start > 0, `V8 reports a new space (semi-space ${mib(sizes.start)} at start)`);
  t.ok(sizes.bounded <= sizes.start, `bounded: ${mib(sizes.bounded)} <= ${mib(sizes.start)}`);
  t.ok(sizes.unbounded > sizes.start, `unbounded, the same load grows it: ${mib(sizes.unbounded)} > ${mib(sizes.start)}`);
  t.end();
});
