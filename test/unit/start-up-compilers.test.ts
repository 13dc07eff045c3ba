/**
 * server/start-up-compilers.cts: pauseCompilers turns Turbofan and Sparkplug off (each unless
 * node's command line sets it), a hot function is then not optimized, and resumeCompilers turns
 * them back on (once), after which it is. Runs in a child process
 * (test/helpers/start-up-compilers-child.ts): V8's flags are process-wide.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../helpers/start-up-compilers-child.ts', import.meta.url));

interface Seen {
  paused: string[];
  optimizedWhilePaused: boolean;
  resumed: string[];
  resumedAgain: string[];
  optimizedAfter: boolean;
  withNoOpt: string[];
  withJitless: string[];
  withSparkplug: string[];
}

t.test('the compilers are paused until resumed, and what the command line sets is left alone', (t) => {
  const out = execFileSync(process.execPath, [...process.execArgv, '--allow-natives-syntax', '--no-concurrent-recompilation', CHILD], { encoding: 'utf8', timeout: 120_000 });
  const seen = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Seen;
  t.same(seen.paused, ['turbofan', 'sparkplug'], 'both are paused');
  t.equal(seen.optimizedWhilePaused, false, 'a hot function is not optimized while paused');
  t.same(seen.resumed, ['turbofan', 'sparkplug'], 'both are resumed');
  t.same(seen.resumedAgain, [], 'a second resume does nothing');
  t.equal(seen.optimizedAfter, true, 'the hot function is optimized once resumed');
  t.same(seen.withNoOpt, ['sparkplug'], '--no-opt on the command line: Turbofan is left alone');
  t.same(seen.withJitless, [], '--jitless in NODE_OPTIONS: both are left alone');
  t.same(seen.withSparkplug, ['turbofan'], '--sparkplug on the command line: Sparkplug is left alone');
  t.end();
});
