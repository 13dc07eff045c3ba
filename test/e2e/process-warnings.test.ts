/**
 * A started server writes Node's process warnings (server/process-warnings.ts) as lines of its
 * JSON log, not as Node's free text on stderr. The warning comes from a preload that emits one
 * on SIGUSR2, sent once the server listens.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startServerProcess } from '../helpers/server-process.js';

t.test('a process warning is one warn line of the log', async (t) => {
  const preload = join(t.testdir(), 'warn-on-usr2.cjs');
  writeFileSync(preload, "process.on('SIGUSR2', () => process.emitWarning('a dependency wants a newer Node', 'TestWarning'));\n");
  const server = await startServerProcess(t, { nodeArgs: ['--require', preload] });
  server.child.kill('SIGUSR2');
  for (const deadline = Date.now() + 10_000; !server.output().includes('TestWarning') && Date.now() < deadline; ) await sleep(20);
  const lines = server.output().split('\n').filter((line) => line.includes('TestWarning'));
  t.equal(lines.length, 1, 'one line');
  const record = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  t.match(record, { level: 40, msg: 'process warning: TestWarning', warning: { name: 'TestWarning', message: 'a dependency wants a newer Node' } });
  t.notMatch(server.output(), /\(node:\d+\)/, 'nothing in Node\'s own format');
  t.equal(await server.stop(), 0);
});
