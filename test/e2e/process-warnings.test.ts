/**
 * A started server writes Node's process warnings (server/process-warnings.ts) as lines of its
 * JSON log, not as Node's free text on stderr, and under NODE_NO_WARNINGS=1 neither. The warning
 * comes from a preload that emits one on SIGUSR2, sent once the server listens.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { startServerProcess } from '../helpers/server-process.js';

/** A preload that emits a warning on SIGUSR2 and writes `emitted` to stderr once its listeners have run. */
const WARN_ON_USR2 = `process.on('SIGUSR2', () => {
  process.emitWarning('a dependency wants a newer Node', 'TestWarning');
  setImmediate(() => process.stderr.write('emitted\\n'));
});
`;

/** Starts a server with the preload, signals it and waits for the warning to have been handled: its output. */
async function warnedServer(t: Test, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const preload = join(t.testdir(), 'warn-on-usr2.cjs');
  writeFileSync(preload, WARN_ON_USR2);
  const server = await startServerProcess(t, { nodeArgs: ['--require', preload], env });
  server.child.kill('SIGUSR2');
  for (const deadline = Date.now() + 10_000; !server.output().includes('emitted') && Date.now() < deadline; ) await sleep(20);
  // Every line is in once the child's pipes close too (after its exit).
  const closed = once(server.child, 'close');
  t.equal(await server.stop(), 0);
  await closed;
  t.match(server.output(), /^emitted$/m, 'the warning was emitted');
  return server.output();
}

t.test('a process warning is one warn line of the log', async (t) => {
  const output = await warnedServer(t);
  const lines = output.split('\n').filter((line) => line.includes('TestWarning'));
  t.equal(lines.length, 1, 'one line');
  const record = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  t.match(record, { level: 40, msg: 'process warning: TestWarning', warning: { name: 'TestWarning', message: 'a dependency wants a newer Node' } });
  t.notMatch(output, /\(node:\d+\)/, 'nothing in Node\'s own format');
});

t.test('under NODE_NO_WARNINGS=1 a process warning is neither printed nor logged', async (t) => {
  t.notMatch(await warnedServer(t, { NODE_NO_WARNINGS: '1' }), /TestWarning/);
});
