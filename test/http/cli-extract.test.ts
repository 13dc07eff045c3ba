/**
 * `bindle get ID --extract DIR` writes each parcel under its label name inside DIR (parent
 * directories created, files never overwritten), and refuses, before writing anything, a name
 * that would land outside DIR; a temp file left by an interrupted `get` is removed by the next.
 * Run in-process against a real Bindle server.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Invoice } from '../../schema/index.js';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { publicKeyEntry } from '../../core/signing/keys.js';
import { BindleClient } from '../../client/lib/bindle-client.js';
import { ABANDONED_DOWNLOAD_AGE_MS } from '../../client/lib/workflows.js';
import { extractionPlan } from '../../client/cli/commands/read-commands.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { listenWithNewCreator } from '../helpers/test-app.js';

t.test('get --extract writes parcels under their label names, and refuses names escaping the directory', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Extract Test <extract@example.com>');
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  const publish = async (name: string, parcels: TestParcel[]): Promise<void> => {
    const invoice = signedInvoice(name, '1.0.0', parcels, { key: creator });
    await client.createInvoice(invoice);
    for (const [i, p] of parcels.entries()) {
      const label = invoice.parcel?.[i]?.label;
      if (label !== undefined) await client.createParcel(`${name}/1.0.0`, label, p.data);
    }
  };
  await publish('example.com/app', [
    { name: 'bin/app.wasm', data: Buffer.from('wasm bytes') },
    { name: 'README.md', data: Buffer.from('# app\n') },
  ]);
  await publish('example.com/evil', [
    { name: 'fine.txt', data: Buffer.from('fine') },
    { name: '../escaped.txt', data: Buffer.from('escaped') },
  ]);
  const keyring = join(dir, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator), publicKeyEntry(server.hostKey)] }));
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', server.url, '-r', keyring, '-d', join(dir, 'cache'), '--retries', '0'];

  const out = join(dir, 'out');
  const r = await bindle([...global, 'get', 'example.com/app/1.0.0', '--extract', out]);
  t.equal(r.code, 0, 'extracted', { stderr: r.stderr });
  t.equal(readFileSync(join(out, 'bin', 'app.wasm'), 'utf8'), 'wasm bytes');
  t.equal(readFileSync(join(out, 'README.md'), 'utf8'), '# app\n');
  const again = await bindle([...global, 'get', 'example.com/app/1.0.0', '--extract', out]);
  t.equal(again.code, 1, 'existing files are never overwritten');
  t.match(again.stderr, /already exists/);

  const evilOut = join(dir, 'evil', 'out');
  const evil = await bindle([...global, 'get', 'example.com/evil/1.0.0', '-x', evilOut]);
  t.equal(evil.code, 1, 'a name escaping the directory is refused');
  t.match(evil.stderr, /"\.\.\/escaped\.txt", which would be written outside .*nothing was extracted/);
  t.notOk(existsSync(join(dir, 'evil', 'escaped.txt')), 'nothing escaped');
  t.notOk(existsSync(evilOut) && readdirSync(evilOut).length > 0, 'nothing was written at all');

  // The temp file of an interrupted download (not written for a long time) is removed by the next
  // get, judged by age, never by process id: a running download's file, even one named with this
  // very process id, is kept, and an old one is removed even when its process id is alive.
  const parcels = join(dir, 'cache', canonicalId({ name: 'example.com/app', version: '1.0.0' }), 'parcels');
  const leftover = join(parcels, `.${'e'.repeat(64)}.dat.${process.pid}.0123456789ab.tmp`);
  writeFileSync(leftover, 'half a parcel');
  const longAgo = (Date.now() - ABANDONED_DOWNLOAD_AGE_MS - 60_000) / 1000;
  utimesSync(leftover, longAgo, longAgo);
  const mine = join(parcels, `.${'e'.repeat(64)}.dat.${process.pid}.ba9876543210.tmp`);
  writeFileSync(mine, 'a download still running');
  const next = await bindle([...global, 'get', 'example.com/app/1.0.0']);
  t.equal(next.code, 0, { stderr: next.stderr });
  t.notOk(existsSync(leftover), "an interrupted get's temp file is removed, not leaked");
  t.ok(existsSync(mine), "a running download's temp file is kept");
});

t.test('extraction plan: absolute, parent and separator tricks are refused', async (t) => {
  const invoice = (names: string[]): Invoice => ({
    bindleVersion: '1.0.0',
    bindle: { name: 'x', version: '1.0.0' },
    parcel: names.map((name, n) => ({ label: { sha256: String(n).repeat(64), mediaType: 'text/plain', name, size: 1 } })),
  });
  for (const bad of ['/etc/passwd', '../up', 'a/../../up', 'a\\..\\..\\up', '', '.']) {
    t.throws(() => extractionPlan(invoice([bad]), '/tmp/extract-here'), { code: 'bad_request' }, `${JSON.stringify(bad)} is refused`);
  }
  t.throws(() => extractionPlan(invoice(['same', 'same']), '/tmp/extract-here'), { code: 'bad_request' }, 'two parcels, one name');
  t.same(extractionPlan(invoice(['a/b.txt']), '/tmp/extract-here').map((p) => p.dest), ['/tmp/extract-here/a/b.txt']);
});

t.test('get --extract: a name of up to 255 bytes a part is written, a longer part is refused naming the parcel', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Long Names <long@example.com>');
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  // 255 bytes in two-byte letters and one ASCII: the longest file name; its temp file's would be longer.
  const longest = `${'é'.repeat(127)}x`;
  const tooLong = 'n'.repeat(256);
  const publish = async (name: string, parcelName: string, data: Buffer): Promise<void> => {
    const invoice = signedInvoice(name, '1.0.0', [{ name: parcelName, data }], { key: creator });
    await client.createInvoice(invoice);
    const label = invoice.parcel?.[0]?.label;
    if (label !== undefined) await client.createParcel(`${name}/1.0.0`, label, data);
  };
  await publish('example.com/longest', `dir/${longest}`, Buffer.from('longest name'));
  await publish('example.com/toolong', `${tooLong}/file.txt`, Buffer.from('too long a name'));
  // Every part fits, the whole path does not (PATH_MAX, 4096 bytes on Linux): the file system
  // refuses it. Two-byte letters: a label name has at most 4096 characters.
  const deep = Array.from({ length: 17 }, () => 'é'.repeat(127)).join('/');
  await publish('example.com/deep', `${deep}/file.txt`, Buffer.from('too deep a name'));
  const keyring = join(dir, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator), publicKeyEntry(server.hostKey)] }));
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', server.url, '-r', keyring, '-d', join(dir, 'cache'), '--retries', '0'];

  const out = join(dir, 'out');
  const written = await bindle([...global, 'get', 'example.com/longest/1.0.0', '-x', out]);
  t.equal(written.code, 0, 'a 255-byte file name is extracted', { stderr: written.stderr });
  t.equal(readFileSync(join(out, 'dir', longest), 'utf8'), 'longest name');
  t.same(readdirSync(join(out, 'dir')), [longest], 'and no temp file is left beside it');

  const refusedOut = join(dir, 'refused');
  const refused = await bindle([...global, 'get', 'example.com/toolong/1.0.0', '-x', refusedOut]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, `parcel ${sha256(Buffer.from('too long a name'))} has the name "${tooLong}/file.txt", whose part "${tooLong}" is 256 bytes long`);
  t.match(refused.stderr, 'file systems take file names of at most 255 bytes; nothing was extracted');
  t.notMatch(refused.stderr, /ENAMETOOLONG/);
  t.notOk(existsSync(refusedOut), 'nothing was written');

  const deepOut = await bindle([...global, 'get', 'example.com/deep/1.0.0', '-x', join(dir, 'deep')]);
  t.equal(deepOut.code, 1);
  t.match(deepOut.stderr, `parcel ${sha256(Buffer.from('too deep a name'))} ("${deep}/file.txt") cannot be written to ${join(dir, 'deep', deep, 'file.txt')}: the file system says its name is too long (ENAMETOOLONG)`);
});
