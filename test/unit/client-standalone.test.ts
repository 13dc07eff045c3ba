/**
 * Standalone bindles (PROTOCOL.md §6): reading our own and the reference's directory and tarball, write/read
 * and export/read round trips, the tarball layout, and every way a bindle on disk is rejected.
 */
import t from 'tap';
import { cp, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create as createTar, list as listTar } from 'tar';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { releaseDifferences } from '../../client/lib/workflows.js';
import { exportTarball, readStandalone, writeStandalone } from '../../client/standalone/standalone-bindle.js';
import { SMALL_PARCEL_BYTES } from '../../client/lib/parcel-digest.js';
import { loadScaffold, sha256, signedInvoice } from '../helpers/bindles.js';
import { VECTOR_SETS, vec } from '../helpers/paths.js';

const WARPCORE = '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd';
const CHIP = '23f310b54076878fd4c36f0c60ec92011a8b406349b98dd37d08577d17397de5';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

for (const set of VECTOR_SETS) {
  t.test(`reads the ${set.name} standalone directory, its parent, and its tarball`, { skip: set.skip }, async (t) => {
    for (const path of [set.path('data', 'standalone', WARPCORE), set.path('data', 'standalone')]) {
      const b = await readStandalone(path);
      t.equal(b.invoice.bindle.name, 'enterprise.com/warpcore', path);
      t.equal(b.root, set.path('data', 'standalone', WARPCORE));
      t.same([...b.parcels.keys()], [CHIP]);
      t.equal(b.parcels.get(CHIP), join(b.root, 'parcels', `${CHIP}.dat`));
      await b.cleanup();
      t.ok(await exists(b.root), 'cleanup never touches a directory bindle');
    }
    const fromTar = await readStandalone(set.path('data', 'standalone', `${WARPCORE}.tar.gz`));
    t.equal(fromTar.invoice.bindle.version, '1.0.0');
    const chip = fromTar.parcels.get(CHIP);
    t.ok(chip !== undefined);
    t.equal(sha256(await readFile(chip ?? '')), CHIP);
    t.not(fromTar.root, set.path('data', 'standalone', WARPCORE), 'extracted elsewhere');
    await fromTar.cleanup();
    t.notOk(await exists(fromTar.root), 'cleanup removes the extracted tarball');
  });
}

t.test('write, read and export round trip', async (t) => {
  const dir = t.testdir({ 'big.bin': Buffer.alloc(200_000, 7) });
  const parcels = [
    { name: 'a.txt', data: Buffer.from('alpha') },
    { name: 'big.bin', data: Buffer.alloc(200_000, 7), mediaType: 'application/octet-stream' },
    { name: 'absent.txt', data: Buffer.from('not written') },
  ];
  const invoice = signedInvoice('example.com/round/trip', '1.2.3', parcels, { description: 'round trip' });
  const cid = canonicalId({ name: 'example.com/round/trip', version: '1.2.3' });
  const given = new Map<string, Buffer | string>([
    [sha256(parcels[0]?.data ?? ''), parcels[0]?.data ?? Buffer.alloc(0)],
    [sha256(parcels[1]?.data ?? ''), join(dir, 'big.bin')],
  ]);
  const out = join(dir, 'out');
  const bindleDir = await writeStandalone(out, invoice, given);
  t.equal(bindleDir, join(out, cid));
  t.same((await readdir(out)).sort(), [cid], 'no staging directory left behind');

  const back = await readStandalone(bindleDir);
  t.same(releaseDifferences(back.invoice, invoice), []);
  t.same(back.invoice.signature, invoice.signature);
  t.same([...back.parcels.keys()].sort(), [...given.keys()].sort(), 'only the parcels given are present');
  t.same(await readFile(back.parcels.get(sha256('alpha')) ?? ''), Buffer.from('alpha'));

  await t.rejects(writeStandalone(out, invoice, new Map()), { code: 'already_exists' });

  const tarball = await exportTarball(bindleDir, join(dir, 'tarballs'));
  t.equal(tarball, join(dir, 'tarballs', `${cid}.tar.gz`));
  const entries: string[] = [];
  await listTar({ file: tarball, onReadEntry: (e) => entries.push(e.path) });
  t.same(
    entries.map((e) => e.replace(/\/$/, '')).sort(),
    [cid, `${cid}/invoice.toml`, `${cid}/parcels`, ...[...given.keys()].map((s) => `${cid}/parcels/${s}.dat`)].sort(),
    'one directory named after the canonical id, holding the invoice and the parcels',
  );
  const fromTar = await readStandalone(tarball);
  t.teardown(() => fromTar.cleanup());
  t.same(releaseDifferences(fromTar.invoice, invoice), []);
  t.same([...fromTar.parcels.keys()].sort(), [...given.keys()].sort());
  t.same(await readFile(fromTar.parcels.get(sha256(Buffer.alloc(200_000, 7))) ?? ''), Buffer.alloc(200_000, 7));
});

t.test('reading keeps the verified bytes of small parcels, follows a symbolic link, and fails a small parcel of the wrong size on its size', async (t) => {
  const dir = t.testdir();
  const small = Buffer.from('small parcel');
  const large = Buffer.alloc(SMALL_PARCEL_BYTES + 1, 3);
  const linked = Buffer.from('linked parcel');
  const parcels = [
    { name: 'small.txt', data: small },
    { name: 'large.bin', data: large, mediaType: 'application/octet-stream' },
    { name: 'linked.txt', data: linked },
  ];
  const invoice = signedInvoice('example.com/small/parcels', '1.0.0', parcels);
  const bindleDir = await writeStandalone(dir, invoice, new Map([[sha256(small), small], [sha256(large), large]]));
  const target = join(dir, 'elsewhere.dat');
  await writeFile(target, linked);
  await symlink(target, join(bindleDir, 'parcels', `${sha256(linked)}.dat`));

  const back = await readStandalone(bindleDir);
  t.same([...back.parcels.keys()].sort(), [sha256(small), sha256(large), sha256(linked)].sort(), 'the linked file is a parcel');
  t.same(back.contents?.get(sha256(small)), small, 'a small parcel\'s bytes are kept');
  t.same(back.contents?.get(sha256(linked)), linked);
  t.notOk(back.contents?.has(sha256(large)), 'a parcel over SMALL_PARCEL_BYTES is not kept');

  const progress: Array<[number, number]> = [];
  await readStandalone(bindleDir, { onHashing: (done, total) => progress.push([done, total]) });
  const total = small.length + large.length + linked.length;
  t.same(progress.at(-1), [total, total], 'hashing progress ends at the parcels\' total size');

  await writeFile(join(bindleDir, 'parcels', `${sha256(small)}.dat`), Buffer.alloc(SMALL_PARCEL_BYTES * 4, 1));
  await t.rejects(readStandalone(bindleDir), { code: 'size_mismatch', message: /262144 bytes/ }, 'a small parcel\'s file of another size fails on its size');
  await writeFile(join(bindleDir, 'parcels', `${sha256(small)}.dat`), small.subarray(0, 10));
  await t.rejects(readStandalone(bindleDir), { code: 'size_mismatch', message: /got 10 bytes/ }, 'so does a shorter one, its size named');
  await writeFile(join(bindleDir, 'parcels', `${sha256(small)}.dat`), Buffer.concat([small, Buffer.from('!')]));
  await t.rejects(readStandalone(bindleDir), { code: 'size_mismatch', message: new RegExp(`got ${small.length + 1} bytes`) }, 'and one a byte longer');
});

t.test('writeStandalone refuses bad parcels and leaves nothing behind', async (t) => {
  const dir = t.testdir();
  const invoice = signedInvoice('example.com/refuse', '1.0.0', [{ name: 'a.txt', data: Buffer.from('alpha') }]);
  await t.rejects(writeStandalone(dir, invoice, new Map([[sha256('other'), Buffer.from('other')]])), { code: 'parcel_not_on_invoice' });
  await t.rejects(writeStandalone(dir, invoice, new Map([[sha256('alpha'), Buffer.from('alphx')]])), { code: 'digest_mismatch' });
  await t.rejects(writeStandalone(dir, invoice, new Map([[sha256('alpha'), Buffer.from('alpha!')]])), { code: 'size_mismatch' });
  await writeFile(join(dir, 'wrong.txt'), 'alphx');
  await t.rejects(writeStandalone(dir, invoice, new Map([[sha256('alpha'), join(dir, 'wrong.txt')]])), { code: 'digest_mismatch' });
  t.same(await readdir(dir), ['wrong.txt'], 'no bindle or staging directory left');

  const invalid = loadScaffold('invalid');
  const data = new Map<string, Buffer | string>();
  const label = invalid.invoice.parcel?.[0]?.label;
  const file = [...invalid.parcels.values()][0];
  if (label !== undefined && file !== undefined) data.set(label.sha256, file.data);
  await t.rejects(writeStandalone(dir, invalid.invoice, data), { code: 'size_mismatch' }, 'the "invalid" scaffold (its label is 12345 bytes)');
});

t.test('a tampered or foreign parcel file is rejected on read', async (t) => {
  const dir = t.testdir();
  const copy = join(dir, WARPCORE);
  await cp(vec('data', 'standalone', WARPCORE), copy, { recursive: true });
  const chip = join(copy, 'parcels', `${CHIP}.dat`);
  const original = await readFile(chip);

  await writeFile(chip, Buffer.from(original.toString('utf8').replace(/^./, 'X')));
  await t.rejects(readStandalone(copy), { code: 'digest_mismatch', message: new RegExp(CHIP) });
  await writeFile(chip, Buffer.concat([original, Buffer.from('!')]));
  await t.rejects(readStandalone(copy), { code: 'size_mismatch' });
  await writeFile(chip, original);
  t.ok(await readStandalone(copy), 'restored');

  const foreign = sha256('foreign');
  await writeFile(join(copy, 'parcels', `${foreign}.dat`), 'foreign');
  await t.rejects(readStandalone(copy), { code: 'parcel_not_on_invoice' });
});

t.test('directories and tarballs that are not one standalone bindle', async (t) => {
  const dir = t.testdir({ empty: {}, two: {}, misnamed: {}, tars: {} });
  await t.rejects(readStandalone(join(dir, 'nowhere')), { code: 'not_found' });
  await t.rejects(readStandalone(join(dir, 'empty')), { code: 'not_found' });

  const a = signedInvoice('example.com/a', '1.0.0', []);
  const b = signedInvoice('example.com/b', '1.0.0', []);
  await writeStandalone(join(dir, 'two'), a, new Map());
  await writeStandalone(join(dir, 'two'), b, new Map());
  await t.rejects(readStandalone(join(dir, 'two')), { code: 'bad_request', message: /2 standalone bindles/ });

  const cidA = canonicalId({ name: 'example.com/a', version: '1.0.0' });
  const cidB = canonicalId({ name: 'example.com/b', version: '1.0.0' });
  await cp(join(dir, 'two', cidA), join(dir, 'misnamed', cidB), { recursive: true });
  await t.rejects(readStandalone(join(dir, 'misnamed', cidB)), { code: 'invalid_id' }, 'directory named after another id');
  await cp(join(dir, 'two', cidA), join(dir, 'misnamed', 'plain-name'), { recursive: true });
  const plain = await readStandalone(join(dir, 'misnamed', 'plain-name'));
  t.equal(plain.invoice.bindle.name, 'example.com/a', 'any other directory name is accepted');
  await t.rejects(exportTarball(join(dir, 'misnamed', 'plain-name'), join(dir, 'tars')), { code: 'invalid_id' });

  await createTar({ gzip: true, file: join(dir, 'tars', 'two.tar.gz'), cwd: join(dir, 'two') }, [cidA, cidB]);
  await t.rejects(readStandalone(join(dir, 'tars', 'two.tar.gz')), { code: 'malformed_body', message: /exactly one directory/ });

  await mkdir(join(dir, 'linked'));
  await cp(join(dir, 'two', cidA), join(dir, 'linked', cidA), { recursive: true });
  await symlink('/etc/passwd', join(dir, 'linked', cidA, 'parcels', 'escape.dat'));
  await createTar({ gzip: true, file: join(dir, 'tars', 'linked.tar.gz'), cwd: join(dir, 'linked') }, [cidA]);
  await t.rejects(readStandalone(join(dir, 'tars', 'linked.tar.gz')), { code: 'malformed_body', message: /SymbolicLink/ });

  await writeFile(join(dir, 'tars', 'junk.tar.gz'), 'not a tarball');
  await t.rejects(readStandalone(join(dir, 'tars', 'junk.tar.gz')), { code: 'malformed_body' });
});
