/**
 * server/server-runtime.ts's openServer takes over Node's process warnings for its log
 * (server/process-warnings.ts) while the server is open: the listeners there were before are
 * back once it closes, and when it fails to open.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadServerConfig } from '../../server/config/server-config.js';
import { openServer } from '../../server/server-runtime.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bindle-warnings-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A listener of our own in place of Node's printer, so that one is certainly there. */
function withPrinter(t: Test): (warning: Error) => void {
  const printer = (): void => undefined;
  process.on('warning', printer);
  t.teardown(() => {
    process.off('warning', printer);
  });
  return printer;
}

t.test('an open server holds the warning listeners; closing puts the ones before back', async (t) => {
  const dir = await tempDir(t);
  const printer = withPrinter(t);
  const before = process.listeners('warning');
  const config = await loadServerConfig(['-i', '127.0.0.1:0', '-d', join(dir, 'data'), '--log-level', 'silent'], {}, dir);
  const server = await openServer(config, { hostLabel: 'Test Host <host@bindle.test>' });
  let closed = false;
  t.teardown(() => (closed ? undefined : server.close()));
  t.notOk(process.listeners('warning').includes(printer), 'the printer is not called while the server is open');
  t.equal(process.listenerCount('warning'), 1, 'the log\'s listener alone');
  await server.listen();
  await server.close();
  closed = true;
  t.same(process.listeners('warning'), before, 'the listeners before are back');
});

t.test('a server that fails to open puts the listeners back', async (t) => {
  const dir = await tempDir(t);
  withPrinter(t);
  const before = process.listeners('warning');
  const config = await loadServerConfig(
    ['-i', '127.0.0.1:0', '-d', join(dir, 'data'), '--log-level', 'silent', '--keyring', join(dir, 'missing-keyring.toml')],
    {},
    dir,
  );
  await t.rejects(openServer(config, { hostLabel: 'Test Host <host@bindle.test>' }), { code: 'invalid_config' });
  t.same(process.listeners('warning'), before, 'the listeners before are back');
});
