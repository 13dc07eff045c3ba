/**
 * FileParcelStore: the ParcelStore contract, plus what only the on-disk store promises: new
 * parcels as `parcels/<sha>.dat`, parcels in the reference layout served, refused again, listed
 * and removed like them, read-only data files, tolerance of the reference's leftovers, no temp
 * files left behind (and a temp directory removed by hand made again), and removal by age
 * (never by PID) of what killed uploads leave.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { constants, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';

import { FileParcelStore, LOOKUP_BUDGET } from '../../server/storage/file-parcel-store.js';
import { UPLOAD_SHARE_BYTES, uploadBudget } from '../../server/storage/parcel-upload.js';
import type { MainThreadBudget } from '../../core/concurrency.js';
import { REPO_ROOT, vec } from '../helpers/paths.js';
import { withEventLoopTurns } from '../helpers/event-loop-turns.js';
import { withPoolCalls, withPoolCallsInFlight } from '../helpers/pool-calls.js';
import { abortingStream, listAll, parcelStoreContract, readAll, sha256Of, streamOf } from './parcel-store-contract.js';
import type { StoredParcel } from '../../server/storage/parcel-store.js';

async function listEntries(store: FileParcelStore): Promise<StoredParcel[]> {
  const all: StoredParcel[] = [];
  for await (const entry of store.entries()) all.push(entry);
  return all;
}

await parcelStoreContract(
  t,
  'FileParcelStore',
  (dir, receive) => FileParcelStore.open(dir, receive),
  async (_t, root, staging) => {
    // Its directory moved away and back, as a volume unmounted and mounted again would be.
    const away = `${root}-away`;
    return { store: await FileParcelStore.open(root, staging), lose: () => rename(root, away), restore: () => rename(away, root) };
  },
);

const tempFiles = (root: string): Promise<string[]> => readdir(join(root, 'parcels', '.tmp'));

/** Waits until an upload under way has created its temp file. */
async function untilUploading(root: string): Promise<void> {
  for (let tries = 0; (await tempFiles(root)).length === 0; tries++) {
    if (tries > 1000) throw new Error('the upload never created its temp file');
    await sleep(5);
  }
}

/**
 * Opens a store at a fresh directory and starts a put of `data` whose first MiB is sent; returns
 * once its temp file exists. The caller ends `upload` (with the rest, or with other bytes).
 */
async function startPut(t: Test, data: Buffer): Promise<{ root: string; store: FileParcelStore; sha: string; upload: PassThrough; putting: Promise<unknown> }> {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  const sha = sha256Of(data);
  const upload = new PassThrough();
  const putting = store.put(sha, data.length, upload);
  upload.write(data.subarray(0, 1 << 20));
  await untilUploading(root);
  return { root, store, sha, upload, putting };
}

t.test('a new parcel is the file parcels/<sha>.dat, read-only', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  const data = Buffer.from('layout check');
  const sha = sha256Of(data);
  await store.put(sha, data.length, streamOf(data));
  const path = join(root, 'parcels', `${sha}.dat`);
  t.equal(store.dataPath(sha), path);
  t.equal(store.referencePath(sha), join(root, 'parcels', sha, 'parcel.dat'));
  t.ok((await readFile(path)).equals(data), 'the bytes are there');
  t.equal((await stat(path)).mode & 0o777, 0o444, 'the data file is read-only');
  t.same(await tempFiles(root), [], 'no temp file is left');
  t.same((await readdir(join(root, 'parcels'))).sort(), ['.hidden', '.tmp', `${sha}.dat`], 'no parcel directory is made');
});

t.test('a parcel in the reference layout is refused again, listed, removed and restored like a flat one', async (t) => {
  const data = Buffer.from('written by the reference server, then managed here');
  const sha = sha256Of(data);
  const root = t.testdir({ parcels: { [sha]: { 'parcel.dat': data } } });
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'already_exists' });
  t.notOk(existsSync(store.dataPath(sha)), 'no second copy is written flat');
  t.same(await store.missing([sha]), new Set());
  t.same(await listAll(store), [sha]);
  const [entry] = await listEntries(store);
  t.equal(entry?.size, data.length);
  t.equal(await store.remove(sha, () => Promise.resolve(false)), 'kept');
  t.ok((await readAll(await store.openRead(sha))).equals(data), 'a refused removal restores it (written flat)');
  t.equal(await store.remove(sha, () => Promise.resolve(true)), 'removed');
  t.equal(await store.has(sha), false);
  t.notOk(existsSync(store.dataPath(sha)) || existsSync(store.referencePath(sha)), 'gone from both layouts');
  t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, 'and it can be stored again');
});

t.test('a parcel held in both layouts is one parcel, and a removal takes both copies', async (t) => {
  const data = Buffer.from('copied in from a reference directory beside our own copy');
  const sha = sha256Of(data);
  const root = t.testdir({ parcels: { [sha]: { 'parcel.dat': data }, [`${sha}.dat`]: data } });
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  t.same(await listAll(store), [sha], 'listed once');
  t.equal((await listEntries(store)).length, 1);
  t.equal(await store.remove(sha, () => Promise.resolve(true)), 'removed');
  t.equal(await store.has(sha), false, 'neither copy is left');
  await t.rejects(store.openRead(sha), { code: 'not_found' });
  t.equal(await store.remove(sha, () => Promise.resolve(true)), 'absent');
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
  t.notOk(existsSync(join(root, 'parcels', `${sha}.dat`)), 'no data file');
  t.notOk(existsSync(join(root, 'parcels', sha)), 'no parcel directory');
});

t.test('parcels/.tmp removed by hand: the next put makes it again', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  await rm(join(root, 'parcels', '.tmp'), { recursive: true });
  const data = Buffer.from('after the temp directory went');
  t.same(await store.put(sha256Of(data), data.length, streamOf(data)), { sha256: sha256Of(data), size: data.length });
  t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data), 'stored');
  t.same(await tempFiles(root), [], 'the temp directory is back, empty');
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
  t.ok((await readFile(join(root, 'parcels', `${sha}.dat`))).equals(data));
});

/** Sets a file's or directory's times to `ms` milliseconds ago. */
async function age(path: string, ms: number): Promise<void> {
  const then = new Date(Date.now() - ms);
  await utimes(path, then, then);
}

const HOUR = 60 * 60 * 1000;

t.test('open removes abandoned uploads, and the sweep it starts empty parcel directories, by age alone', async (t) => {
  const emptyOld = sha256Of(Buffer.from('a kill between mkdir and link'));
  const emptyNew = sha256Of(Buffer.from('a parcel being published right now'));
  const reference = sha256Of(Buffer.from('a reference upload that crashed'));
  const root = t.testdir({
    parcels: {
      '.tmp': {
        'abandoned.part': 'from an upload killed an hour ago',
        '1.0123456789ab.00ff.part': 'old-style name of PID 1 in a container, abandoned',
        'in-flight.part': "another replica's upload, written to a moment ago",
      },
      [emptyOld]: {},
      [emptyNew]: {},
      [reference]: { 'parcel.dat.part': 'partial' },
    },
  });
  const tmp = join(root, 'parcels', '.tmp');
  await age(join(tmp, 'abandoned.part'), HOUR + 60_000);
  await age(join(tmp, '1.0123456789ab.00ff.part'), 2 * HOUR);
  await age(join(root, 'parcels', emptyOld), 2 * HOUR);
  await age(join(root, 'parcels', reference), 2 * HOUR);
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  t.same(await tempFiles(root), ['in-flight.part'], 'once open returns, only the recently written temp file is left');
  await store.sweep();
  t.notOk(existsSync(join(root, 'parcels', emptyOld)), 'an empty parcel directory older than the staging age is removed');
  t.ok(existsSync(join(root, 'parcels', emptyNew)), 'a fresh one is left (an upload may be linking into it)');
  t.ok(existsSync(join(root, 'parcels', reference, 'parcel.dat.part')), "the reference's leftovers are left alone");
  t.same(await listAll(store), [], 'none of it was ever a parcel');
});

t.test('a sweep asked for while one may be under way sees what changed before it was asked for', async (t) => {
  const root = t.testdir({ parcels: { '.tmp': {} } });
  const store = await FileParcelStore.open(root, { stagingSweepMs: 0 });
  t.teardown(() => store.close());
  const first = store.sweep();
  // Abandoned after the first sweep may have looked (the Sweeper's unit test pins the order).
  const path = join(root, 'parcels', '.tmp', 'killed-meanwhile.part');
  await writeFile(path, 'abandoned');
  await age(path, 2 * HOUR);
  await store.sweep();
  t.same(await tempFiles(root), [], 'it removed what was abandoned before it was asked for');
  await first;
});

t.test('the sweep reads parcels/ a batch at a time, after open returns: empty parcel directories among thousands of parcels are all found', async (t) => {
  // More entries than one batch of the sweep's directory reads (512), the empty directories
  // spread among them in the directory's order, whatever it is.
  const root = t.testdir({ parcels: {} });
  const parcels = join(root, 'parcels');
  const flat = Array.from({ length: 3000 }, (_, i) => `${sha256Of(Buffer.from(`flat ${i}`))}.dat`);
  for (const name of flat) await writeFile(join(parcels, name), '');
  const empty = Array.from({ length: 40 }, (_, i) => sha256Of(Buffer.from(`killed ${i}`)));
  for (const name of empty) {
    await mkdir(join(parcels, name));
    await age(join(parcels, name), 2 * HOUR);
  }
  const store = await FileParcelStore.open(root, { stagingSweepMs: 0 });
  t.teardown(() => store.close());
  // Nothing but microtasks ran since open returned: the walk, which needs the thread pool, has not.
  t.equal(empty.filter((name) => existsSync(join(parcels, name))).length, empty.length, 'open returned before the walk of parcels/, which goes on after it');
  await store.sweep();
  const left = new Set(await readdir(parcels));
  t.same(empty.filter((name) => left.has(name)), [], 'every old empty parcel directory is removed');
  t.equal(flat.filter((name) => left.has(name)).length, flat.length, 'every parcel file is left');
});

t.test('close stops the walk of parcels/ under way instead of waiting for it, and reports no sweep failure', async (t) => {
  const root = t.testdir({ parcels: {} });
  const parcels = join(root, 'parcels');
  const empty = Array.from({ length: 2000 }, (_, i) => sha256Of(Buffer.from(`killed ${i}`)));
  for (const name of empty) {
    await mkdir(join(parcels, name));
    await age(join(parcels, name), 2 * HOUR);
  }
  const sweepErrors: unknown[] = [];
  const store = await FileParcelStore.open(root, { stagingSweepMs: 0, onSweepError: (err) => sweepErrors.push(err) });
  const queued = store.sweep();
  await store.close();
  await t.rejects(queued, { code: 'unavailable' }, 'a sweep queued behind the walk never runs');
  const left = empty.filter((name) => existsSync(join(parcels, name))).length;
  t.ok(left > empty.length / 2, `the walk stopped early (${left} of ${empty.length} old empty directories left)`);
  t.same(sweepErrors, [], 'its stop is not a sweep failure');
  await t.rejects(store.sweep(), { code: 'unavailable' }, 'a closed store does not sweep');
});

t.test("a store opening while another store uploads into the same directory keeps the upload's temp file", async (t) => {
  const data = Buffer.alloc(3 << 20, 3);
  const { root, sha, upload, putting } = await startPut(t, data);
  // A second replica starting (same PID, as every container's server is PID 1).
  const second = await FileParcelStore.open(root);
  t.teardown(() => second.close());
  await second.sweep();
  t.equal((await tempFiles(root)).length, 1, "the live upload's temp file survives another store's open and sweep");
  upload.end(data.subarray(1 << 20));
  t.same(await putting, { sha256: sha, size: data.length }, 'the live upload completes');
  t.equal(await second.has(sha), true, 'and the other store sees the parcel');
  t.same(await tempFiles(root), []);
});

t.test('the periodic sweep removes uploads abandoned while the store is open', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root, { stagingMaxAgeMs: HOUR, stagingSweepMs: 20 });
  t.teardown(() => store.close());
  const abandoned = join(root, 'parcels', '.tmp', 'abandoned.part');
  await writeFile(abandoned, 'left by a replica killed mid-upload');
  await age(abandoned, 2 * HOUR);
  const live = join(root, 'parcels', '.tmp', 'live.part');
  await writeFile(live, 'being written');
  for (let tries = 0; existsSync(abandoned); tries++) {
    if (tries > 2000) throw new Error('the periodic sweep never removed the abandoned temp file');
    await sleep(10);
  }
  t.pass('the abandoned temp file is removed without a restart');
  t.ok(existsSync(live), 'the live one stays');
});

t.test('an upload killed with SIGKILL leaves only a temp file, which a later sweep removes', async (t) => {
  const root = t.testdir({
    'uploader.mts': `
      import { PassThrough } from 'node:stream';
      import { FileParcelStore } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'server/storage/file-parcel-store.ts')).href)};
      const store = await FileParcelStore.open(process.argv[2], { stagingSweepMs: 0 });
      const upload = new PassThrough();
      store.put('${'ab'.repeat(32)}', 4 << 20, upload).catch(() => undefined);
      upload.write(Buffer.alloc(1 << 20, 1), () => process.stdout.write('writing\\n'));
      setInterval(() => undefined, 1000);
    `,
  });
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'uploader.mts'), root], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await once(child.stdout, 'data');
  for (let tries = 0; (await tempFiles(root)).length === 0; tries++) {
    if (tries > 2000) throw new Error('the uploader never created its temp file');
    await sleep(10);
  }
  child.kill('SIGKILL');
  await once(child, 'exit');
  const left = await tempFiles(root);
  t.equal(left.length, 1, 'the killed upload left its temp file');

  const restarted = await FileParcelStore.open(root);
  t.teardown(() => restarted.close());
  t.same(await tempFiles(root), left, 'a store opening at once keeps it (it could be a live upload)');
  await age(join(root, 'parcels', '.tmp', left[0] ?? ''), 2 * HOUR);
  await restarted.sweep();
  t.same(await tempFiles(root), [], 'once older than the staging age, the sweep removes it');
  const data = randomBytes(3000);
  t.same(await restarted.put(sha256Of(data), data.length, streamOf(data)), { sha256: sha256Of(data), size: data.length }, 'the store takes uploads');
});

t.test('bad staging options are invalid_config', async (t) => {
  const root = t.testdir();
  await t.rejects(FileParcelStore.open(root, { stagingMaxAgeMs: -1 }), { code: 'invalid_config' });
  await t.rejects(FileParcelStore.open(root, { stagingSweepMs: 1.5 }), { code: 'invalid_config' });
});

t.test('an upload is stored while a reference upload writes into the parcel\'s directory', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  const data = Buffer.from('late directory');
  const sha = sha256Of(data);
  const upload = new PassThrough();
  const putting = store.put(sha, data.length, upload);
  await mkdir(join(root, 'parcels', sha), { recursive: true });
  await writeFile(join(root, 'parcels', sha, 'parcel.dat.part'), 'x');
  upload.end(data);
  t.same(await putting, { sha256: sha, size: data.length });
  t.ok((await readAll(await store.openRead(sha))).equals(data));
  t.ok(existsSync(join(root, 'parcels', sha, 'parcel.dat.part')), "the reference's file is left alone");
});

t.test('hidden data a killed removal left in parcels/.hidden is swept by age', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root, { stagingSweepMs: 0 });
  t.teardown(() => store.close());
  const leftover = join(root, 'parcels', '.hidden', `${sha256Of(Buffer.from('left'))}.abcdef`);
  await writeFile(leftover, 'left by a killed gc');
  await store.sweep();
  t.ok(existsSync(leftover), 'a young leftover stays (a removal may be under way)');
  await sleep(20);
  const impatient = await FileParcelStore.open(root, { stagingMaxAgeMs: 10, stagingSweepMs: 0 });
  t.teardown(() => impatient.close());
  t.notOk(existsSync(leftover), 'one older than the staging age is removed');
});

t.test('an empty parcel directory (an upload under way, or killed) is no parcel and does not block a put', async (t) => {
  const data = Buffer.from('after an upload that was killed between mkdir and link');
  const sha = sha256Of(data);
  const root = t.testdir({ parcels: { [sha]: {} } });
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  t.equal(await store.has(sha), false, 'not present');
  t.same(await listAll(store), [], 'not listed');
  t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length });
  t.ok((await readAll(await store.openRead(sha))).equals(data));
});

t.test("a failed put leaves alone the parcel another put of it stored meanwhile", async (t) => {
  const data = Buffer.alloc(2 << 20, 9);
  const { root, store, sha, upload: failing, putting: failed } = await startPut(t, data);
  t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, 'a second put of the parcel completes meanwhile');
  failing.end(Buffer.alloc(1 << 20, 1));
  await t.rejects(failed, { code: 'digest_mismatch' }, 'the first, with wrong bytes, fails');
  t.ok((await readAll(await store.openRead(sha))).equals(data), "the second put's parcel stays");
  t.same(await tempFiles(root), []);
});

const descriptorsSkip = existsSync('/proc/self/fd') ? false : 'counting descriptors needs /proc/self/fd (Linux)';
t.test('puts, stored or refused, leave no file descriptor open', { skip: descriptorsSkip }, async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root);
  t.teardown(() => store.close());
  await store.sweep(); // no sweep's directory handle open at either count
  const descriptors = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
  const before = await descriptors();
  const data = Buffer.from('descriptor accounting');
  const sha = sha256Of(data);
  const other = Buffer.from('an empty directory was there first');
  await mkdir(join(root, 'parcels', sha256Of(other)));
  await Promise.all([
    store.put(sha, data.length, streamOf(data)),
    store.put(sha256Of(other), other.length, streamOf(other)),
    t.rejects(store.put(sha256Of(Buffer.from('x')), data.length, streamOf(data)), { code: 'digest_mismatch' }),
    t.rejects(store.put(sha256Of(Buffer.from('y')), 100, abortingStream(Buffer.alloc(10))), 'an aborted upload fails'),
  ]);
  await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'already_exists' });
  t.equal(await descriptors(), before, 'as many descriptors open as before, once the puts have answered');
  t.ok((await readAll(await store.openRead(sha256Of(other)))).equals(other), 'a put into an existing empty directory stores the parcel');
  t.same(await tempFiles(root), [], 'no temp file left');
});

const fdinfoSkip = existsSync('/proc/self/fdinfo') ? false : 'reading open flags needs /proc/self/fdinfo (Linux)';
t.test('a parcel that fits one write batch (at most 1 MiB) is written with O_DSYNC (its write is its data sync); a larger one is not', { skip: fdinfoSkip }, async (t) => {
  /** The open flags of this process's descriptor on the upload's temp file. */
  const tempFlags = async (root: string): Promise<number> => {
    const [name] = await tempFiles(root);
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
      if (name === undefined || basename(target) !== name) continue;
      const flags = /^flags:\s*([0-7]+)$/m.exec(await readFile(join('/proc/self/fdinfo', fd), 'utf8'))?.[1];
      if (flags !== undefined) return parseInt(flags, 8);
    }
    throw new Error('no descriptor on the temp file');
  };
  async function putWatchingFlags(size: number, synced: boolean, open: number): Promise<void> {
    const data = randomBytes(size);
    const root = t.testdir();
    // The store's own budget, with `open` other uploads open on it: the process's is not touched.
    const budget = uploadBudget();
    for (let i = 0; i < open; i++) budget.opened();
    const store = await FileParcelStore.open(root, { uploadBudget: budget });
    t.teardown(() => store.close());
    const upload = new PassThrough();
    const putting = store.put(sha256Of(data), data.length, upload);
    upload.write(data.subarray(0, 100));
    await untilUploading(root);
    t.equal((await tempFlags(root) & constants.O_DSYNC) !== 0, synced, `${size} bytes, ${open} other uploads open: O_DSYNC ${synced ? 'set' : 'not set'}`);
    upload.end(data.subarray(100));
    t.same(await putting, { sha256: sha256Of(data), size: data.length });
    t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data));
  }
  // With many uploads open the upload budget gives 256 KiB batches: 300 KiB would take more than
  // one synced write, so it is fsynced once instead.
  const others = UPLOAD_SHARE_BYTES / (2 * (256 << 10));
  for (const [size, synced, open] of [[1 << 20, true, 0], [(1 << 20) + 1, false, 0], [256 << 10, true, others], [300 << 10, false, others]] as const) {
    await putWatchingFlags(size, synced, open);
  }
});

t.test('missing() looks parcels up synchronously, in slices that let the event loop turn, while the look-ups are fast; else through the pool, a window at a time', async (t) => {
  const storeWith = async (lookupBudget: MainThreadBudget): Promise<{ store: FileParcelStore; stored: string[] }> => {
    const store = await FileParcelStore.open(t.testdir(), { stagingSweepMs: 0, lookupBudget });
    t.teardown(() => store.close());
    const stored = Array.from({ length: 10 }, (_, i) => Buffer.from(`stored ${i}`));
    for (const data of stored) await store.put(sha256Of(data), data.length, streamOf(data));
    return { store, stored: stored.map((d) => sha256Of(d)) };
  };
  const absent = Array.from({ length: 5000 }, (_, i) => sha256Of(Buffer.from(`absent ${i}`)));
  /** missing() of the stored and the absent digests, with the pool calls and event-loop turns it took. */
  const lookUp = async (store: FileParcelStore, stored: string[]): Promise<{ result: Set<string>; most: number; turns: number }> => {
    const { result: { result, most }, turns } = await withEventLoopTurns(() => withPoolCallsInFlight(() => store.missing([...stored, ...absent])));
    return { result, most, turns };
  };

  const fast = await storeWith({ ...LOOKUP_BUDGET, slowMs: 1000 });
  const inMemory = await lookUp(fast.store, fast.stored);
  t.same(inMemory.result, new Set(absent), 'the absent ones, and only they');
  t.equal(inMemory.most, 0, 'no look-up through the pool while they are fast');
  t.ok(inMemory.turns > 0, `other work ran in between (${inMemory.turns} event-loop turns)`);

  const slow = await storeWith({ ...LOOKUP_BUDGET, sliceMs: -1, slowMs: -1 });
  const onDisk = await lookUp(slow.store, slow.stored);
  t.same(onDisk.result, new Set(absent), 'the absent ones, and only they, through the pool');
  t.ok(onDisk.most <= LOOKUP_BUDGET.limit && onDisk.most > 1, `at most ${LOOKUP_BUDGET.limit} look-ups under way (${onDisk.most}), but more than one`);

  const byDefault = await storeWith(LOOKUP_BUDGET);
  t.same((await lookUp(byDefault.store, byDefault.stored)).result, new Set(absent), 'the default budget');
});

t.test('a small put of a new parcel makes 3 thread-pool calls: create, the synced write, the fsync of parcels/ (its existence checks are synchronous)', async (t) => {
  const root = t.testdir();
  const store = await FileParcelStore.open(root, { stagingSweepMs: 0 });
  t.teardown(() => store.close());
  await store.sweep(); // the sweep open started would be counted too
  const data = randomBytes(1024);
  const { calls } = await withPoolCalls(() => store.put(sha256Of(data), data.length, streamOf(data)));
  t.equal(calls.length, 3, `thread-pool calls: ${calls.join(', ')}`);
  t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data));
});
