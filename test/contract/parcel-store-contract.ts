/**
 * The ParcelStore contract: the behaviour every parcel store implementation must show. Each
 * implementation's test file calls `parcelStoreContract` with a factory for a fresh store and,
 * where the implementation can be given storage of its own to take away (a directory, a
 * bucket), one for a store whose storage is lost while it is open.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';

import { isBindleError } from '../../core/errors/bindle-error.js';
import { readiness, storageChecks } from '../../server/service/readiness.js';
import { REFUSE_UNREAD_ABOVE_BYTES, type ParcelStore, type StagingOptions } from '../../server/storage/parcel-store.js';
import { uploadBudget, type ReceiveOptions } from '../../server/storage/parcel-upload.js';
import { SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';

/** Makes a fresh, empty store whose data lives under `dir` (a new empty directory). */
/** Opens a store in `dir` (a fresh test directory), with `receive` passed to its `open`. */
export type ParcelStoreFactory = (dir: string, receive?: ReceiveOptions) => Promise<ParcelStore>;

/**
 * A fresh store on storage of its own, which `lose()` takes away while the store stays open (as
 * a deleted bucket or directory, or an unmounted volume, would) and `restore()` gives back
 * (working storage, not necessarily with what it held). Closing the store is the caller's.
 */
export interface LosableStore {
  store: ParcelStore;
  lose: () => Promise<void>;
  restore: () => Promise<void>;
}
/**
 * Makes a LosableStore, any files of it under `dir` (a new empty directory), opened with
 * `staging` when given (else with staging options of the factory's choosing); teardowns go on `t`.
 */
export type LosableStoreFactory = (t: Test, dir: string, staging?: StagingOptions) => Promise<LosableStore>;

export function sha256Of(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `data` cut into chunks of `size` bytes, as a network upload would arrive. */
export function chunksOf(data: Buffer, size = 64 * 1024): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) chunks.push(data.subarray(offset, offset + size));
  return chunks;
}

/** A paused stream of `data` in 64 KiB chunks. */
export function streamOf(data: Buffer, chunkSize?: number): Readable {
  return Readable.from(chunksOf(data, chunkSize));
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A stream that yields `head` in chunks and then fails with `error`, like an aborted upload. */
export function abortingStream(head: Buffer, error?: Error): Readable {
  const chunks = chunksOf(head);
  return new Readable({
    read() {
      const next = chunks.shift();
      if (next !== undefined) this.push(next);
      else this.destroy(error);
    },
  });
}

export async function listAll(store: ParcelStore): Promise<string[]> {
  const digests: string[] = [];
  for await (const digest of store.list()) digests.push(digest);
  return digests;
}

/** 0x00..0xff repeated to `size` bytes: every byte's value tells its position. */
function patterned(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = i & 0xff;
  return data;
}

/**
 * Runs the contract against the stores `makeStore` makes, as a subtest of `t` named `name`,
 * and, given `makeLosable`, what a store does when its storage is lost.
 */
export async function parcelStoreContract(t: Test, name: string, makeStore: ParcelStoreFactory, makeLosable?: LosableStoreFactory): Promise<void> {
  const fresh = async (t: Test, receive?: ReceiveOptions): Promise<ParcelStore> => {
    const store = await makeStore(t.testdir(), receive);
    t.teardown(() => store.close());
    return store;
  };

  /** Asserts the parcel is absent in every way the store can tell, then that a retry stores it. */
  const assertAbsentThenRetry = async (t: Test, store: ParcelStore, data: Buffer): Promise<void> => {
    const sha = sha256Of(data);
    t.equal(await store.has(sha), false, 'has() is false after the failed put');
    t.equal(await store.stat(sha), undefined, 'stat() is undefined after the failed put');
    t.same(await store.missing([sha]), new Set([sha]), 'missing() reports it');
    t.notOk((await listAll(store)).includes(sha), 'list() does not show it');
    await t.rejects(store.openRead(sha), { code: 'not_found' });
    t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, 'a retry succeeds');
    t.ok((await readAll(await store.openRead(sha))).equals(data), 'the retried parcel reads back intact');
  };

  await t.test(`ParcelStore contract: ${name}`, async (t) => {
    t.test('put then has, stat, openRead and list round-trip the bytes', async (t) => {
      const store = await fresh(t);
      const small = Buffer.from('hello, parcel\n');
      const empty = Buffer.alloc(0);
      // Big enough for a store that writes back (syncs) in the background while data arrives.
      const large = randomBytes(20 * (1 << 20) + 12345);
      for (const [label, data] of [['small', small], ['empty', empty], ['multi-MiB', large]] as const) {
        const sha = sha256Of(data);
        t.equal(await store.has(sha), false, `${label}: absent before put`);
        t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, `${label}: put result`);
        t.equal(await store.has(sha), true, `${label}: has`);
        t.same(await store.stat(sha), { size: data.length }, `${label}: stat`);
        const back = await readAll(await store.openRead(sha));
        t.equal(back.length, data.length, `${label}: read length`);
        t.ok(back.equals(data), `${label}: read bytes equal`);
      }
      t.same(await listAll(store), [small, empty, large].map(sha256Of).sort(), 'list() shows exactly the stored digests');
    });

    t.test('uploads are received through the upload budget the store was opened with', async (t) => {
      const budget = uploadBudget();
      const store = await fresh(t, { uploadBudget: budget });
      const data = randomBytes(3 * (1 << 20) + 7);
      const upload = new PassThrough();
      const putting = store.put(sha256Of(data), data.length, upload);
      putting.catch(() => undefined);
      upload.write(data.subarray(0, 1000));
      for (let waited = 0; budget.open === 0 && waited < 10_000; waited += 10) await sleep(10);
      t.equal(budget.open, 1, 'the upload is open on the store\'s budget');
      upload.end(data.subarray(1000));
      t.same(await putting, { sha256: sha256Of(data), size: data.length });
      t.equal(budget.open, 0, 'and closed on it once received');
      t.equal(budget.held, 0, 'holding nothing');
      t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data), 'the parcel reads back intact');
    });

    t.test('a stream of one huge chunk and a stream of tiny chunks both store', async (t) => {
      const store = await fresh(t);
      const huge = randomBytes(2 * (1 << 20) + 1);
      const tiny = randomBytes(5000);
      await store.put(sha256Of(huge), huge.length, Readable.from([huge]));
      await store.put(sha256Of(tiny), tiny.length, streamOf(tiny, 7));
      t.ok((await readAll(await store.openRead(sha256Of(huge)))).equals(huge));
      t.ok((await readAll(await store.openRead(sha256Of(tiny)))).equals(tiny));
    });

    t.test('chunks of every size, interleaved, store byte for byte', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(5 * (1 << 20) + 333);
      const sizes = [1, 70_000, 3, 16 * 1024, 16 * 1024 - 1, 200_000, 5000, 1 << 20, 64 * 1024, 17];
      const pieces: Buffer[] = [];
      for (let offset = 0, i = 0; offset < data.length; i++) {
        const size = sizes[i % sizes.length] ?? 1;
        pieces.push(data.subarray(offset, offset + size));
        offset += size;
      }
      await store.put(sha256Of(data), data.length, Readable.from(pieces));
      t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data));
    });

    t.test('byte ranges', async (t) => {
      const store = await fresh(t);
      const data = patterned((1 << 20) + 300);
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      const last = data.length - 1;
      const cases: [number, number][] = [
        [0, 0],
        [10, 19],
        [0, last],
        [last - 4, last],
        [last, last],
        [(1 << 20) - 10, (1 << 20) + 10],
      ];
      for (const [start, end] of cases) {
        const got = await readAll(await store.openRead(sha, { start, end }));
        t.ok(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`);
      }
      const clamped = await readAll(await store.openRead(sha, { start: last - 2, end: last + 1000 }));
      t.ok(clamped.equals(data.subarray(last - 2)), 'an end past the last byte is clamped');
      for (const [start, end] of [
        [data.length, data.length + 5],
        [20, 10],
        [-1, 5],
        [1.5, 8],
      ] as const) {
        await t.rejects(store.openRead(sha, { start, end }), { code: 'range_not_satisfiable' }, `range ${start}-${end}`);
      }
      const empty = Buffer.alloc(0);
      await store.put(sha256Of(empty), 0, streamOf(empty));
      await t.rejects(store.openRead(sha256Of(empty), { start: 0, end: 0 }), { code: 'range_not_satisfiable' }, 'empty parcel');
    });

    t.test('fewer bytes than the size: size_mismatch and nothing left', async (t) => {
      const store = await fresh(t);
      const data = randomBytes((1 << 20) + 100);
      await t.rejects(store.put(sha256Of(data), data.length, streamOf(data.subarray(0, data.length - 1))), {
        code: 'size_mismatch',
      });
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('more bytes than the size: size_mismatch, reading stops early, nothing left', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(3000);
      await t.rejects(store.put(sha256Of(data), data.length, streamOf(Buffer.concat([data, Buffer.from('x')]))), {
        code: 'size_mismatch',
      });
      let produced = 0;
      const endless = Readable.from(
        (function* () {
          for (;;) {
            produced++;
            yield Buffer.alloc(1024, 1);
          }
        })(),
      );
      await t.rejects(store.put(sha256Of(data), data.length, endless), { code: 'size_mismatch' }, 'an endless stream is cut off');
      t.ok(produced < 1000, `the store stopped reading (it pulled ${produced} KiB for a 3000-byte parcel)`);
      t.notOk(endless.destroyed, 'the store left the caller its stream');
      endless.destroy();
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('wrong digest: digest_mismatch and nothing left', async (t) => {
      const store = await fresh(t);
      const data = randomBytes((1 << 20) + 7);
      const other = Buffer.from(data);
      other[other.length - 1] = (other.at(-1) ?? 0) ^ 0xff;
      await t.rejects(store.put(sha256Of(data), data.length, streamOf(other)), { code: 'digest_mismatch' });
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('a second put of a stored parcel: already_exists, bytes unchanged', async (t) => {
      const store = await fresh(t);
      const data = Buffer.from('stored once');
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'already_exists' });
      await t.rejects(store.put(sha, 3, streamOf(Buffer.from('bad'))), { code: 'already_exists' }, 'even with wrong data');
      t.ok((await readAll(await store.openRead(sha))).equals(data));
      t.same(await listAll(store), [sha]);
    });

    t.test('a stored parcel over REFUSE_UNREAD_ABOVE_BYTES is refused before its data is read', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(REFUSE_UNREAD_ABOVE_BYTES + 1);
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      let reads = 0;
      const again = new Readable({
        read() {
          reads++;
          this.push(data);
          this.push(null);
        },
      });
      await t.rejects(store.put(sha, data.length, again), { code: 'already_exists' });
      t.equal(reads, 0, 'nothing was read of the second upload');
      t.equal(again.destroyed, false, 'and the stream is left to the caller');
    });

    t.test('a stored parcel up to REFUSE_UNREAD_ABOVE_BYTES: already_exists, whatever its data', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(REFUSE_UNREAD_ABOVE_BYTES);
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'already_exists' }, 'the same data');
      const wrong = Buffer.from(data);
      wrong[wrong.length - 1] = (wrong.at(-1) ?? 0) ^ 1;
      await t.rejects(store.put(sha, data.length, streamOf(wrong)), { code: 'already_exists' }, 'other data');
      await t.rejects(store.put(sha, data.length, streamOf(data.subarray(1))), { code: 'already_exists' }, 'too few bytes');
      await t.rejects(store.put(sha, data.length, streamOf(Buffer.concat([data, data.subarray(0, 9)]))), { code: 'already_exists' }, 'too many');
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'the stored bytes are unchanged');
    });

    t.test('32 concurrent puts of one parcel: exactly one succeeds, the rest already_exists', async (t) => {
      const store = await fresh(t);
      const data = randomBytes((1 << 20) + 4321);
      const sha = sha256Of(data);
      const results = await Promise.allSettled(Array.from({ length: 32 }, () => store.put(sha, data.length, streamOf(data))));
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      t.equal(won.length, 1, 'exactly one put succeeds');
      t.equal(lost.length, 31);
      t.ok(
        lost.every((err) => isBindleError(err, 'already_exists')),
        'every other put fails with already_exists',
      );
      t.same(await store.stat(sha), { size: data.length });
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'the stored bytes are intact');
      t.same(await listAll(store), [sha]);
    });

    t.test('concurrent puts of one parcel where some carry bad data', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(200_000);
      const sha = sha256Of(data);
      const bad = randomBytes(data.length);
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => store.put(sha, data.length, streamOf(i % 2 === 0 ? bad : data))),
      );
      const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : isBindleError(r.reason) ? r.reason.code : 'other'));
      t.equal(codes.filter((c) => c === 'ok').length, 1, 'one good put wins');
      t.ok(
        codes.every((c, i) => c === 'ok' || c === 'already_exists' || (i % 2 === 0 && c === 'digest_mismatch')),
        `the others fail with already_exists, or digest_mismatch for bad data: ${codes.join(', ')}`,
      );
      t.notOk(codes.some((c, i) => i % 2 === 0 && c === 'ok'), 'no bad put wins');
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'the stored bytes are the good ones');
    });

    t.test('a stream that errors midway: the error is rethrown, nothing left, retry works', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(20 * (1 << 20) + 99);
      const boom = new Error('client aborted');
      let caught: unknown;
      try {
        await store.put(sha256Of(data), data.length, abortingStream(data.subarray(0, 17 * (1 << 20) + 10), boom));
      } catch (err) {
        caught = err;
      }
      t.equal(caught, boom, 'put rejects with the stream error itself');
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('a stream that closes before its end: rejects, nothing left, retry works', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(300_000);
      await t.rejects(store.put(sha256Of(data), data.length, abortingStream(data.subarray(0, 100_000))), {
        code: 'bad_request',
      });
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('20 MiB parcels (several multipart parts): 3 concurrent puts, exactly one succeeds', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(20 * (1 << 20) + 4321);
      const sha = sha256Of(data);
      const results = await Promise.allSettled(Array.from({ length: 3 }, () => store.put(sha, data.length, streamOf(data))));
      const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : isBindleError(r.reason) ? r.reason.code : String(r.reason)));
      t.equal(codes.filter((c) => c === 'ok').length, 1, `exactly one put succeeds: ${codes.join(', ')}`);
      t.ok(
        codes.every((c) => c === 'ok' || c === 'already_exists'),
        'the others fail with already_exists',
      );
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'the stored bytes are intact');
      const got = await readAll(await store.openRead(sha, { start: 8 * (1 << 20) - 5, end: 16 * (1 << 20) + 5 }));
      t.ok(got.equals(data.subarray(8 * (1 << 20) - 5, 16 * (1 << 20) + 6)), 'a range across part boundaries reads back');
      t.same(await listAll(store), [sha]);
    });

    t.test('missing() answers many digests at once', async (t) => {
      const store = await fresh(t);
      const stored = Array.from({ length: 25 }, (_, i) => Buffer.from(`stored parcel ${i}`));
      const absent = Array.from({ length: 30 }, (_, i) => sha256Of(Buffer.from(`absent parcel ${i}`)));
      for (const data of stored) await store.put(sha256Of(data), data.length, streamOf(data));
      const storedShas = stored.map(sha256Of);
      t.same(await store.missing([]), new Set(), 'no digests: none missing');
      t.same(await store.missing(storedShas), new Set(), 'every stored digest is present');
      t.same(await store.missing(absent), new Set(absent), 'every absent digest is missing');
      const mixed = [...storedShas, ...absent, ...storedShas.slice(0, 3), ...absent.slice(0, 3)].reverse();
      t.same(await store.missing(mixed), new Set(absent), 'a mix with duplicates, in any order');
      const failed = randomBytes(1000);
      await t.rejects(store.put(sha256Of(failed), failed.length + 1, streamOf(failed)), { code: 'size_mismatch' });
      t.same(await store.missing([sha256Of(failed)]), new Set([sha256Of(failed)]), 'a failed put stays missing');
      await t.rejects(store.missing([...storedShas, 'ABC']), { code: 'bad_request' }, 'a malformed digest is bad_request');
    });

    t.test('storedSizes() gives the sizes of the stored digests among many, and agrees with missing()', async (t) => {
      const store = await fresh(t);
      const stored = Array.from({ length: 25 }, (_, i) => Buffer.alloc(i * 7, i));
      const absent = Array.from({ length: 30 }, (_, i) => sha256Of(Buffer.from(`absent parcel ${i}`)));
      for (const data of stored) await store.put(sha256Of(data), data.length, streamOf(data));
      const expected = new Map(stored.map((data) => [sha256Of(data), data.length]));
      t.same(await store.storedSizes([]), new Map(), 'no digests: no sizes');
      const mixed = [...expected.keys(), ...absent, ...[...expected.keys()].slice(0, 3), ...absent.slice(0, 3)].reverse();
      const sizes = await store.storedSizes(mixed);
      t.same(new Map([...sizes].sort()), new Map([...expected].sort()), 'every stored digest with its size, no absent one, duplicates once');
      t.same(await store.missing(mixed), new Set(absent), 'missing() is the complement');
      await t.rejects(store.storedSizes([...absent, 'ABC']), { code: 'bad_request' }, 'a malformed digest is bad_request');
    });

    t.test('missing parcels', async (t) => {
      const store = await fresh(t);
      const sha = sha256Of(Buffer.from('never stored'));
      t.equal(await store.has(sha), false);
      t.equal(await store.stat(sha), undefined);
      await t.rejects(store.openRead(sha), { code: 'not_found' });
      await t.rejects(store.openRead(sha, { start: 0, end: 0 }), { code: 'not_found' });
      t.same(await listAll(store), []);
    });

    t.test('entries() lists each stored parcel with its size and store time', async (t) => {
      const store = await fresh(t);
      const before = Date.now();
      const parcels = [Buffer.from('entry one'), Buffer.alloc(0), randomBytes(3000)];
      for (const data of parcels) await store.put(sha256Of(data), data.length, streamOf(data));
      const listed: Array<{ sha256: string; size: number; storedAt: number }> = [];
      for await (const entry of store.entries()) listed.push(entry);
      listed.sort((a, b) => a.sha256.localeCompare(b.sha256));
      const expected = parcels.map((d) => ({ sha256: sha256Of(d), size: d.length })).sort((a, b) => a.sha256.localeCompare(b.sha256));
      t.same(listed.map((e) => ({ sha256: e.sha256, size: e.size })), expected);
      for (const entry of listed) {
        // Clocks of the store and of this process may differ a little (S3 LastModified has whole seconds).
        t.ok(entry.storedAt > before - 120_000 && entry.storedAt < Date.now() + 120_000, `storedAt of ${entry.sha256} is now`);
      }
    });

    t.test('remove(): confirmed removes, refused or failed restores, absent says so', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(5000);
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      let seenWhileHidden: boolean | undefined;
      const kept = await store.remove(sha, async () => {
        seenWhileHidden = await store.has(sha);
        t.same(await store.missing([sha]), new Set([sha]), 'missing() reports it while hidden');
        return false;
      });
      t.equal(kept, 'kept');
      t.equal(seenWhileHidden, false, 'hidden while confirm runs');
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'a refused removal restores the bytes');
      await t.rejects(store.remove(sha, () => Promise.reject(new Error('index down'))), { message: 'index down' });
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'a failed confirm restores the bytes');
      t.equal(await store.remove(sha, () => Promise.resolve(true)), 'removed');
      t.equal(await store.has(sha), false, 'a confirmed removal removes it');
      t.same(await listAll(store), []);
      t.equal(await store.remove(sha, () => Promise.reject(new Error('not called'))), 'absent', 'an absent parcel is absent');
      await t.rejects(store.remove('ABC', () => Promise.resolve(true)), { code: 'bad_request' });
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('remove(): a put while the parcel is hidden wins over the restore', async (t) => {
      const store = await fresh(t);
      const data = randomBytes(2000);
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      const outcome = await store.remove(sha, async () => {
        t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, 'the put stores it again');
        return false;
      });
      t.equal(outcome, 'kept');
      t.ok((await readAll(await store.openRead(sha))).equals(data), 'the parcel is there once');
      t.same(await listAll(store), [sha]);
    });

    t.test('a malformed sha256 is bad_request everywhere', async (t) => {
      const store = await fresh(t);
      const good = sha256Of(Buffer.from('x'));
      for (const bad of [good.toUpperCase(), good.slice(1), `${good}0`, `../${good.slice(3)}`, '', `${good.slice(1)}g`]) {
        await t.rejects(store.has(bad), { code: 'bad_request' }, `has ${bad}`);
        await t.rejects(store.stat(bad), { code: 'bad_request' }, `stat ${bad}`);
        await t.rejects(store.openRead(bad), { code: 'bad_request' }, `openRead ${bad}`);
        await t.rejects(store.missing([good, bad]), { code: 'bad_request' }, `missing ${bad}`);
        await t.rejects(store.put(bad, 1, streamOf(Buffer.from('x'))), { code: 'bad_request' }, `put ${bad}`);
      }
      t.same(await listAll(store), []);
    });

    t.test('a malformed size is bad_request', async (t) => {
      const store = await fresh(t);
      const data = Buffer.from('x');
      for (const size of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await t.rejects(store.put(sha256Of(data), size, streamOf(data)), { code: 'bad_request' }, `size ${size}`);
      }
      await assertAbsentThenRetry(t, store, data);
    });

    t.test('close() lets a put under way finish', async (t) => {
      const store = await makeStore(t.testdir());
      const data = randomBytes(9 * (1 << 20) + 5);
      const sha = sha256Of(data);
      const upload = new PassThrough();
      const putting = store.put(sha, data.length, upload);
      upload.write(data.subarray(0, 1 << 20));
      const closing = store.close();
      upload.end(data.subarray(1 << 20));
      t.same(await putting, { sha256: sha, size: data.length }, 'the put completes');
      await closing;
      await t.rejects(store.has(sha), { code: 'unavailable' }, 'and then the store is closed');
    });

    if (makeLosable !== undefined) {
      t.test('storage lost under an open store: its parcels are unavailable, never absent, until it is back', async (t) => {
        const dir = t.testdir({ store: {}, index: {} });
        const sweepErrors: unknown[] = [];
        const { store, lose, restore } = await makeLosable(t, join(dir, 'store'), { stagingSweepMs: 25, onSweepError: (err) => sweepErrors.push(err) });
        t.teardown(() => store.close());
        const index = SqliteInvoiceIndex.open(join(dir, 'index', 'index.sqlite'));
        t.teardown(() => index.close());
        const stored = randomBytes(1000);
        const sha = sha256Of(stored);
        await store.put(sha, stored.length, streamOf(stored));
        await lose();

        const unavailable = { code: 'unavailable' };
        await t.rejects(store.stat(sha), unavailable, 'stat() of a stored parcel');
        await t.rejects(store.has(sha256Of(Buffer.from('never stored'))), unavailable, 'has() of a parcel never stored');
        await t.rejects(store.missing([sha]), unavailable, 'missing()');
        await t.rejects(store.openRead(sha), unavailable, 'openRead(), not not_found');
        await t.rejects(listAll(store), unavailable, 'list(), not an empty list');
        await t.rejects(store.remove(sha, () => Promise.resolve(true)), unavailable, 'remove(), not absent');
        const fresh = randomBytes(500);
        await t.rejects(store.put(sha256Of(fresh), fresh.length, streamOf(fresh)), unavailable, 'put()');
        for (const deadline = Date.now() + 10_000; sweepErrors.length === 0 && Date.now() < deadline; ) await sleep(25);
        t.ok(sweepErrors.length > 0 && sweepErrors[0] instanceof Error, 'the background sweep reports that it failed');
        const report = await readiness('serving', storageChecks(index, store), 5000);
        t.equal(report.status, 'unavailable', 'the server is not ready');
        t.match(report.checks.parcels, { ok: false }, 'because of its parcels');
        t.match(report.checks.index, { ok: true });

        await restore();
        t.same(await store.put(sha256Of(fresh), fresh.length, streamOf(fresh)), { sha256: sha256Of(fresh), size: fresh.length }, 'once it is back, a put works');
        t.ok((await readAll(await store.openRead(sha256Of(fresh)))).equals(fresh), 'and reads, without reopening the store');
        t.equal(await store.has(sha256Of(Buffer.from('never stored'))), false, 'a parcel not stored is absent again');
        t.equal((await readiness('serving', storageChecks(index, store), 5000)).status, 'ready');
      });
    }

    t.test('a closed store is unavailable', async (t) => {
      const store = await makeStore(t.testdir());
      const data = Buffer.from('closing');
      const sha = sha256Of(data);
      await store.put(sha, data.length, streamOf(data));
      await store.close();
      await t.rejects(store.has(sha), { code: 'unavailable' });
      await t.rejects(store.missing([sha]), { code: 'unavailable' });
      await t.rejects(store.openRead(sha), { code: 'unavailable' });
      await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'unavailable' });
    });
  });
}
