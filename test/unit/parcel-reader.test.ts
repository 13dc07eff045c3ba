/**
 * ParcelReader over a real FileParcelStore: sizes and small parcels are served without asking
 * the store until an entry is `revalidateMs` old (shown by removing the file behind the store's
 * back, as another replica's garbage collection would); then a removed parcel is gone. The
 * memory kept is bounded (bytes and entries, least recently used out), only verified bytes are
 * kept, big parcels are streamed, ranges of small ones are cut from memory, forget() drops;
 * sizeFor reads a small parcel once for its size and bytes, and trusts no label for how big it is.
 */
import t, { type Test } from 'tap';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import { ParcelReader, type ParcelReaderOptions } from '../../server/storage/parcel-reader.js';

function digest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function bytesOf(body: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function setup(t: Test, options: ParcelReaderOptions, parcels: Buffer[]): Promise<{ store: FileParcelStore; reader: ParcelReader; clock: { ms: number }; shas: string[] }> {
  const store = await FileParcelStore.open(t.testdir(), { stagingSweepMs: 0 });
  t.teardown(() => store.close());
  const shas: string[] = [];
  for (const data of parcels) {
    const sha256 = digest(data);
    await store.put(sha256, data.length, Readable.from([data]));
    shas.push(sha256);
  }
  const clock = { ms: 1_000_000 };
  return { store, reader: new ParcelReader(store, { now: () => clock.ms, ...options }), clock, shas };
}

const kib = (n: number, seed: number): Buffer => Buffer.alloc(n * 1024, seed);

t.test('a remembered size and small parcel need no store call until revalidateMs; then a removed parcel is gone', async (t) => {
  const data = kib(1, 1);
  const { store, reader, clock, shas } = await setup(t, { revalidateMs: 5000 }, [data]);
  const sha = shas[0] ?? '';
  t.equal(await reader.size(sha), 1024);
  t.same(await bytesOf(await reader.read(sha, 1024)), data);
  rmSync(store.dataPath(sha), { force: true });
  clock.ms += 4999;
  t.equal(await reader.size(sha), 1024, 'still remembered: no stat');
  t.same(await bytesOf(await reader.read(sha, 1024)), data, 'served from memory: no read');
  clock.ms += 1;
  t.equal(await reader.size(sha), undefined, 'after revalidateMs the store is asked again');
  t.same(reader.usage(), { entries: 0, bytes: 0 }, 'and the entry is dropped');
  t.equal(await reader.size(digest(kib(1, 9))), undefined, 'a parcel never stored is not found (and never remembered)');
  t.same(reader.usage(), { entries: 0, bytes: 0 });
});

t.test('the memory kept is bounded: least recently used parcels go first', async (t) => {
  const parcels = [1, 2, 3, 4, 5].map((seed) => kib(1, seed));
  const { store, reader, shas } = await setup(t, { cacheBytes: 3 * 1024 }, parcels);
  for (const sha of shas) await reader.read(sha, (await reader.size(sha)) ?? -1);
  t.same(reader.usage(), { entries: 5, bytes: 3 * 1024 }, 'all sizes remembered, the bytes of three');
  await reader.read(shas[2] ?? '', 1024);
  for (const sha of shas) rmSync(store.dataPath(sha), { force: true });
  for (const i of [2, 3, 4]) t.same(await bytesOf(await reader.read(shas[i] ?? '', 1024)), parcels[i], `parcel ${i} is in memory`);
  await t.rejects(reader.read(shas[0] ?? '', 1024), { code: 'not_found' }, 'the oldest was dropped and is read from the store');

  const few = await setup(t, { maxEntries: 2 }, parcels.slice(0, 3));
  for (const sha of few.shas) await few.reader.size(sha);
  t.equal(few.reader.usage().entries, 2, 'at most maxEntries parcels are remembered');
});

t.test('when an entry must go, one served since it was queued is spared once; the one being remembered never goes', async (t) => {
  const parcels = [1, 2, 3].map((seed) => kib(1, seed));
  const { reader, shas } = await setup(t, { maxEntries: 2 }, parcels);
  const [a = '', b = '', c = ''] = shas;
  await reader.size(a);
  await reader.size(b);
  t.equal(reader.knownSize(a), 1024, 'the older parcel is served');
  await reader.size(c);
  t.equal(reader.knownSize(b), undefined, 'so the one not served since it was queued went, not the older one');
  await reader.size(b);
  t.equal(reader.knownSize(c), undefined, 'next, the oldest not served since went: c (a was requeued after c when spared)');
  t.equal(reader.knownSize(a), 1024);
  t.equal(reader.knownSize(b), 1024, 'the parcel being remembered stays');
  t.equal(reader.usage().entries, 2);
});

t.test('only bytes whose sha256 is the parcel\'s are kept; big parcels are streamed; ranges; forget', async (t) => {
  const small = Buffer.from('the quick brown fox');
  const big = kib(80, 7);
  const { store, reader, shas } = await setup(t, { smallMaxBytes: 64 * 1024 }, [small, big]);
  const [smallSha = '', bigSha = ''] = shas;
  const path = store.dataPath(smallSha);
  chmodSync(path, 0o644);
  writeFileSync(path, Buffer.from('the quick brown cat'));
  t.equal((await bytesOf(await reader.read(smallSha, small.length))).toString(), 'the quick brown cat', 'what the store holds is served');
  t.equal(reader.usage().bytes, 0, 'but corrupt bytes are never kept');
  writeFileSync(path, small);
  t.equal((await bytesOf(await reader.read(smallSha, small.length, { start: 4, end: 8 }))).toString(), 'quick', 'a range of a small parcel');
  t.equal(reader.usage().bytes, small.length, 'verified bytes are kept');
  t.equal((await bytesOf(await reader.read(smallSha, small.length, { start: 16, end: 99 }))).toString(), 'fox', 'an end past the last byte is clamped');
  const streamed = await reader.read(bigSha, big.length);
  t.notOk(Buffer.isBuffer(streamed), 'a parcel over smallMaxBytes is a stream');
  t.same(await bytesOf(streamed), big);
  t.same(await bytesOf(await reader.read(bigSha, big.length, { start: 1000, end: 1999 })), big.subarray(1000, 2000));
  t.equal(reader.usage().bytes, small.length, 'big parcels are never kept');
  reader.forget(smallSha);
  t.same(reader.usage(), { entries: 0, bytes: 0 });
  const empty = await setup(t, {}, [Buffer.alloc(0)]);
  t.equal(await empty.reader.size(empty.shas[0] ?? ''), 0);
  t.same(await bytesOf(await empty.reader.read(empty.shas[0] ?? '', 0)), Buffer.alloc(0), 'an empty parcel');
});

t.test('knownSize and cachedBytes answer from memory only, and follow the same revalidation', async (t) => {
  const data = kib(1, 7);
  const { reader, clock, shas } = await setup(t, { revalidateMs: 5000 }, [data]);
  const sha = shas[0] ?? '';
  t.equal(reader.knownSize(sha), undefined, 'nothing is known before the store was asked');
  t.equal(reader.cachedBytes(sha), undefined, 'nothing is in memory before a read');
  t.equal(await reader.size(sha), 1024);
  t.equal(reader.knownSize(sha), 1024, 'the size, once the store confirmed it');
  t.equal(reader.cachedBytes(sha), undefined, 'the bytes only after a read');
  await reader.read(sha, 1024);
  t.same(reader.cachedBytes(sha), data, 'the bytes, once read and verified');
  t.same(reader.cachedBytes(sha, { start: 1000, end: 2000 }), data.subarray(1000), 'a range, clamped at the last byte');
  clock.ms += 5000;
  t.equal(reader.knownSize(sha), undefined, 'after revalidateMs the caller must ask the store (size())');
  reader.forget(sha);
  t.equal(reader.cachedBytes(sha), undefined, 'forget() drops the bytes');
});

/** Counts the store's look-ups (stat) and reads (openRead) the reader makes. */
function countCalls(store: FileParcelStore): { stat: number; openRead: number } {
  const calls = { stat: 0, openRead: 0 };
  const stat = store.stat.bind(store);
  const openRead = store.openRead.bind(store);
  store.stat = (sha256) => (calls.stat++, stat(sha256));
  store.openRead = (sha256, range) => (calls.openRead++, openRead(sha256, range));
  return calls;
}

t.test('sizeFor: a small parcel not remembered is read whole, once, for both its size and its bytes', async (t) => {
  const small = kib(2, 1);
  const large = kib(100, 2);
  const { store, reader, shas } = await setup(t, {}, [small, large]);
  const [s = '', l = ''] = shas;
  const calls = countCalls(store);
  t.equal(await reader.sizeFor(s, small.length), small.length);
  t.same(calls, { stat: 0, openRead: 1 }, 'one read, no look-up');
  t.same(await bytesOf(await reader.read(s, small.length)), small, 'then served from memory');
  t.equal(reader.cachedBytes(s)?.length, small.length);
  t.same(calls, { stat: 0, openRead: 1 }, 'without another read');
  t.equal(await reader.sizeFor(s, small.length), small.length, 'remembered');
  t.same(calls, { stat: 0, openRead: 1 });

  t.equal(await reader.sizeFor(l, large.length), large.length, 'a large parcel');
  t.same(calls, { stat: 1, openRead: 1 }, 'is looked up, not read');
  t.equal(reader.cachedBytes(l), undefined);
});

t.test('sizeFor: a parcel not stored is undefined; a label that understates the size is not trusted', async (t) => {
  const large = kib(100, 3);
  const { store, reader, shas } = await setup(t, {}, [large]);
  const l = shas[0] ?? '';
  const calls = countCalls(store);
  t.equal(await reader.sizeFor(digest(kib(1, 9)), 1024), undefined, 'not stored');
  t.same(reader.usage(), { entries: 0, bytes: 0 }, 'and not remembered');
  t.equal(await reader.sizeFor(l, 10), large.length, 'the stored size, though the label says 10 bytes');
  t.same(calls, { stat: 1, openRead: 2 }, 'the read stopped past a small parcel\'s bytes and the size was looked up');
  t.equal(reader.cachedBytes(l), undefined, 'nothing kept');
});

t.test('sizeFor: bytes that are not the parcel\'s give its stored size but are not kept', async (t) => {
  const data = kib(1, 4);
  const { store, reader, shas } = await setup(t, {}, [data]);
  const sha = shas[0] ?? '';
  const other = kib(1, 5);
  chmodSync(store.dataPath(sha), 0o644);
  writeFileSync(store.dataPath(sha), other);
  t.equal(await reader.sizeFor(sha, data.length), other.length);
  t.equal(reader.cachedBytes(sha), undefined, 'not kept');
});
