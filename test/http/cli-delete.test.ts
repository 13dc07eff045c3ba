/**
 * `bindle delete` and BindleClient.deleteInvoice: a hard delete through the CLI, against a real
 * Bindle server listening on 127.0.0.1 (no authentication: everyone holds every grant). The
 * bindle then answers `deleted`, and a second delete fails with it.
 */
import t from 'tap';
import { join } from 'node:path';
import { BindleClient } from '../../client/lib/bindle-client.js';
import { signedInvoice } from '../helpers/bindles.js';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { listenWithNewCreator } from '../helpers/test-app.js';

t.test('bindle delete removes a bindle for good, with its reason in the tombstone', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Delete Test <delete@example.com>');
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  await client.createInvoice(signedInvoice('example.com/illegal', '1.0.0', [{ name: 'x', data: Buffer.from('x') }], { key: creator }));
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', server.url, '-d', join(dir, 'cache'), '--retries', '0'];

  const deleted = await bindle([...global, 'delete', '--reason', 'takedown notice', 'example.com/illegal/1.0.0']);
  t.equal(deleted.code, 0, deleted.stderr);
  t.match(deleted.stdout, 'Bindle example.com/illegal/1.0.0 deleted');
  t.match(JSON.parse((await server.index.tombstone('example.com/illegal', '1.0.0'))?.record ?? '{}'), { reason: 'takedown notice' });
  await t.rejects(client.getInvoice('example.com/illegal/1.0.0'), { code: 'deleted' }, 'the client library reads 410 as deleted');
  const again = await bindle([...global, 'delete', 'example.com/illegal/1.0.0']);
  t.equal(again.code, 1, 'a second delete fails');
  t.match(again.stderr, /could not delete example\.com\/illegal\/1\.0\.0.*deleted by an administrator/);
  const bad = await bindle([...global, 'delete', 'not-an-id']);
  t.not(bad.code, 0, 'an invalid id is a usage error');
});
