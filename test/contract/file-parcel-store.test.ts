/**
 * FileParcelStore: the ParcelStore contract, plus what only the on-disk store promises: the
 * reference layout, read-only data files, tolerance of the reference's leftovers, no temp files
 * left behind, and removal of a crashed upload's temp files on open.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';

import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import { vec } from '../helpers/paths.js';
import { abortingStream, listAll, parcelStoreContract, readAll, sha256Of, streamOf } from './parcel-store-contract.js';

await parcelStoreContract(t, 'FileParcelStore', (dir) => FileParcelStore.open(dir));

const tempFiles = (root: string): Promise<string[]> => readdir(join(root, 'parcels', '.tmp'));

t.test('the data file is at parcels/<sha>/parcel.dat, read-only', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  const data = Buffer.from('layout check');
  const sha = sha256Of(data);
  await store.put(sha, data.length, streamOf(data));
  const path = join(root, 'parcels', sha, 'parcel.dat');
  t.equal(store.dataPath(sha), path);
  t.ok((await readFile(path)).equals(data), 'the bytes are in the reference location');
  t.equal((await stat(path)).mode & 0o777, 0o444, 'the data file is read-only');
  t.same(await tempFiles(root), [], 'no temp file is left');
  t.same(await readdir(join(root, 'parcels', sha)), ['parcel.dat'], 'nothing else in the parcel directory');
});

t.test('failed puts leave no file behind', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  const data = Buffer.alloc((1 << 20) + 5, 7);
  const sha = sha256Of(data);
  await t.rejects(store.put(sha, data.length - 1, streamOf(data)), { code: 'size_mismatch' });
  await t.rejects(store.put(sha, data.length + 1, streamOf(data)), { code: 'size_mismatch' });
  await t.rejects(store.put(sha, data.length, streamOf(Buffer.alloc(data.length, 8))), { code: 'digest_mismatch' });
  await t.rejects(store.put(sha, data.length, abortingStream(data.subarray(0, 1 << 20), new Error('gone'))), {
    message: 'gone',
  });
  t.same(await tempFiles(root), [], 'no temp file');
  t.notOk(existsSync(join(root, 'parcels', sha)), 'no parcel directory');
});

t.test("the reference's leftovers neither count as parcels nor block a put", async (t) => {
  const data = Buffer.from('uploaded after a failed reference upload');
  const sha = sha256Of(data);
  const other = sha256Of(Buffer.from('a reference upload that crashed'));
  const root = t.testdir({
    parcels: {
      [sha]: {},
      [other]: { 'parcel.dat.part': 'partial' },
    },
  });
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  t.equal(await store.has(sha), false, 'an empty parcel directory is not a parcel');
  t.equal(await store.stat(other), undefined, 'a directory holding only a part file is not a parcel');
  await t.rejects(store.openRead(sha), { code: 'not_found' });
  t.same(await listAll(store), []);
  t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, 'the put succeeds');
  t.ok((await readAll(await store.openRead(sha))).equals(data));
  t.same(await listAll(store), [sha]);
  t.ok(existsSync(join(root, 'parcels', other, 'parcel.dat.part')), "the reference's file is left alone");
});

t.test('a reference data directory is served as it is', async (t) => {
  const data = Buffer.from('written by the reference server');
  const sha = sha256Of(data);
  const root = t.testdir({ parcels: { [sha]: { 'parcel.dat': data } } });
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  t.same(await store.stat(sha), { size: data.length });
  t.ok((await readAll(await store.openRead(sha, { start: 9, end: 11 }))).equals(data.subarray(9, 12)));
  t.same(await listAll(store), [sha]);
  await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'already_exists' });
});

t.test('the reference standalone fixture parcel stores and reads back under its sha', async (t) => {
  const dir = vec('data', 'standalone', '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd', 'parcels');
  const [file] = await readdir(dir);
  if (file === undefined) throw new Error(`no parcel in ${dir}`);
  const sha = basename(file, '.dat');
  const data = await readFile(join(dir, file));
  t.equal(sha256Of(data), sha, 'the fixture is named by its sha256');
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  await store.put(sha, data.length, streamOf(data));
  t.ok((await readAll(await store.openRead(sha))).equals(data));
  t.ok((await readFile(join(root, 'parcels', sha, 'parcel.dat'))).equals(data));
});

t.test('open removes the temp files of crashed uploads, not those of live ones', async (t) => {
  const root = t.testdir({
    parcels: {
      '.tmp': {
        '2147480000.0123456789ab.00ff.part': 'from a process that is gone',
        [`${process.pid}.0123456789ab.00ff.part`]: 'from a store of this process that is not open',
        junk: 'not one of ours',
      },
    },
  });
  const first = await FileParcelStore.open(root);
  t.teardown(() => first.close());
  t.same(await tempFiles(root), [], 'stray temp files are removed');
  t.same(await listAll(first), [], 'and were never parcels');

  const data = Buffer.alloc(3 << 20, 3);
  const sha = sha256Of(data);
  const upload = new PassThrough();
  const putting = first.put(sha, data.length, upload);
  upload.write(data.subarray(0, 1 << 20));
  for (let tries = 0; (await tempFiles(root)).length === 0; tries++) {
    if (tries > 1000) throw new Error('the upload never created its temp file');
    await sleep(5);
  }
  const second = await FileParcelStore.open(root);
  t.teardown(() => second.close());
  t.equal((await tempFiles(root)).length, 1, "a live upload's temp file survives another open");
  upload.end(data.subarray(1 << 20));
  t.same(await putting, { sha256: sha, size: data.length }, 'the live upload completes');
  t.equal(await second.has(sha), true);
  t.same(await tempFiles(root), []);
});

t.test('uploads land in a parcel directory that a reference upload created meanwhile', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  const data = Buffer.from('late directory');
  const sha = sha256Of(data);
  const upload = new PassThrough();
  const putting = store.put(sha, data.length, upload);
  await mkdir(join(root, 'parcels', sha));
  await writeFile(join(root, 'parcels', sha, 'parcel.dat.part'), 'x');
  upload.end(data);
  t.same(await putting, { sha256: sha, size: data.length });
  t.ok((await readAll(await store.openRead(sha))).equals(data));
});
