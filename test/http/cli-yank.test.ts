/**
 * Yank reaches CLI users: `info`, `get`, `get-invoice` and `get-parcel` ask the server even when
 * the cache holds the bindle, so a bindle yanked on the server is refused (unless `--yanked`);
 * only while the server is unreachable is the cached copy used, and the CLI says so; the cache
 * remembers a yank it saw. `search --yanked` marks yanked rows. Run in-process against a real
 * Bindle server listening on 127.0.0.1.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { formatId } from '../../core/ids/bindle-id.js';
import { publicKeyEntry } from '../../core/signing/keys.js';
import { BindleClient } from '../../client/lib/bindle-client.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { listenWithNewCreator } from '../helpers/test-app.js';

t.test('a yanked bindle is refused even when cached; the cache is used only while the server is unreachable', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Yank Test <yank@example.com>');
  const data = Buffer.from('parcel bytes\n');
  const seed = new BindleClient({ baseUrl: server.url });
  t.teardown(() => seed.close());
  const ids: string[] = [];
  for (const name of ['example.com/yanked', 'example.com/kept']) {
    const invoice = signedInvoice(name, '1.0.0', [{ name: 'data.txt', data }], { key: creator, description: `the ${name} bindle` });
    const id = formatId({ name, version: '1.0.0' });
    await seed.createInvoice(invoice);
    const label = invoice.parcel?.[0]?.label;
    if (label !== undefined) await seed.createParcel(id, label, data);
    ids.push(id);
  }
  const [yanked = '', kept = ''] = ids;
  const keyring = join(dir, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator), publicKeyEntry(server.hostKey)] }));
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', server.url, '-r', keyring, '-d', join(dir, 'cache'), '--retries', '0'];

  for (const id of ids) t.equal((await bindle([...global, 'get', id])).code, 0, `get ${id} caches it`);
  t.equal((await bindle([...global, 'yank', yanked])).code, 0, 'yank');

  const info = await bindle([...global, 'info', yanked]);
  t.equal(info.code, 1, 'info reads the server: refused after the yank', { stdout: info.stdout });
  t.match(info.stderr, /yanked.*\(pass --yanked/);
  t.notMatch(info.stderr, /\?yanked=true/, "not the HTTP API's advice");
  const get = await bindle([...global, 'get', yanked]);
  t.equal(get.code, 1, 'get re-checks the invoice: refused', { stdout: get.stdout });
  t.match(get.stderr, /yanked/);
  const getInvoice = await bindle([...global, 'get-invoice', '-o', join(dir, 'inv.toml'), yanked]);
  t.equal(getInvoice.code, 1, 'get-invoice refused');
  const getParcel = await bindle([...global, 'get-parcel', '-o', join(dir, 'p.dat'), yanked, sha256(data)]);
  t.equal(getParcel.code, 1, 'get-parcel refused');

  const shown = await bindle([...global, 'info', '--yanked', yanked]);
  t.equal(shown.code, 0, 'info --yanked');
  t.match(shown.stdout, /yanked = true/, 'info shows the yank');
  t.equal((await bindle([...global, 'get', '--yanked', yanked])).code, 0, 'get --yanked');

  const search = await bindle([...global, 'search', '--yanked']);
  t.equal(search.code, 0);
  t.match(search.stdout, `${yanked}:\tthe example.com/yanked bindle [yanked]\n`, 'the yanked row is marked');
  t.match(search.stdout, `${kept}:\tthe example.com/kept bindle\n`, 'the other is not');

  await server.app.close();
  const offline = await bindle([...global, 'get', kept]);
  t.equal(offline.code, 0, 'with the server down, the complete cached copy is used', { stderr: offline.stderr });
  t.match(offline.stderr, /warning: the server is unreachable .*using the cached copy of example\.com\/kept\/1\.0\.0/, 'and the CLI says so');
  const offlineInfo = await bindle([...global, 'info', kept]);
  t.equal(offlineInfo.code, 0, 'info too');
  t.match(offlineInfo.stderr, /using the cached copy/);
  const offlineYanked = await bindle([...global, 'get', yanked]);
  t.equal(offlineYanked.code, 1, 'the cache remembers the yank');
  t.match(offlineYanked.stderr, /yanked/);
});
