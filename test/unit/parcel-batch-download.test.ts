/**
 * The batch download's reply (server/http/parcel-batch-download.ts): the `parcels` list is read
 * strictly, the body is exactly as long as its Content-Length says, each parcel is read only when
 * the body gets to it, and a parcel that cannot be read ends the body with that error. Piped into
 * HTTP responses, parcels read from files go out within the read buffer budget (clients that stop
 * reading hold no more than its cap), a failing parcel cuts the response off, and a client that
 * goes away leaves no file open.
 */
import { randomBytes } from 'node:crypto';
import { truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { batchDownload, MAX_BATCH_DOWNLOAD_PARCELS, parseParcelList, type BatchParcel } from '../../server/http/parcel-batch-download.js';
import { FileReadStream, ReadBufferBudget } from '../../server/storage/file-read-stream.js';
import { sha256 } from '../helpers/bindles.js';
import { serveLocally } from '../helpers/local-server.js';
import { checkStoppedDownloadsHeld, settled, stoppedReaderBudget, stoppedReaderBytes, stopReading } from '../helpers/stopped-readers.js';

const one = Buffer.from('one');
const two = Buffer.alloc(100_000, 2);

async function bytesOf(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

t.test('parseParcelList: distinct lowercase sha256 digests, in order, up to the limit', async (t) => {
  t.same(parseParcelList(`${sha256(two)},${sha256(one)},${sha256(two)}`), [sha256(two), sha256(one)]);
  t.throws(() => parseParcelList(''), { code: 'invalid_query' });
  t.throws(() => parseParcelList(`${sha256(one)},`), { code: 'invalid_query' }, 'a trailing comma');
  t.throws(() => parseParcelList(sha256(one).toUpperCase()), { code: 'invalid_query' });
  const list = Array.from({ length: MAX_BATCH_DOWNLOAD_PARCELS }, (_, i) => sha256(Buffer.from(String(i))));
  t.equal(parseParcelList(list.join(',')).length, MAX_BATCH_DOWNLOAD_PARCELS, 'the limit itself');
  t.throws(() => parseParcelList([...list, sha256(one)].join(',')), { code: 'invalid_query', message: /at most/ });
});

t.test('the body is as long as its Content-Length, read parcel by parcel, in memory or streamed', async (t) => {
  const reads: string[] = [];
  const parcels: BatchParcel[] = [
    { sha256: sha256(one), size: one.length, mediaType: 'text/plain', read: () => (reads.push('one'), one) },
    { sha256: sha256(two), size: two.length, mediaType: 'bad\r\nheader: injected', read: async () => (reads.push('two'), Readable.from([two.subarray(0, 10), two.subarray(10)])) },
  ];
  const batch = batchDownload(parcels);
  t.same(reads, [], 'nothing read before the body is');
  const body = await bytesOf(batch.body());
  t.same(reads, ['one', 'two']);
  t.equal(batch.headers['content-length'], body.length);
  const boundary = /boundary=(\S+)$/.exec(String(batch.headers['content-type']))?.[1] ?? '';
  t.ok(body.toString('latin1').endsWith(`\r\n--${boundary}--\r\n`), 'closed');
  t.notMatch(body.toString('latin1'), /injected/, 'a media type that is not a valid header value is not sent');
  t.match(body.toString('latin1'), 'Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n');
});

t.test('a parcel that cannot be read ends the body with the error', async (t) => {
  const batch = batchDownload([
    { sha256: sha256(one), size: one.length, mediaType: 'text/plain', read: () => one },
    { sha256: sha256(two), size: two.length, mediaType: 'text/plain', read: () => Promise.reject(new Error('gone')) },
  ]);
  await t.rejects(bytesOf(batch.body()), { message: 'gone' });
});

/** A server on 127.0.0.1 answering each request with the batch download `parcelsFor()` names, as the route sends it. */
function serveBatch(t: Test, parcelsFor: () => BatchParcel[]): Promise<string> {
  return serveLocally(t, (_req, res) => {
    const batch = batchDownload(parcelsFor());
    res.writeHead(200, batch.headers);
    const body = batch.body();
    // As Fastify sends a stream: an error after the headers cuts the response off, and a
    // response that closes first destroys the stream.
    body.on('error', () => res.destroy());
    res.on('close', () => {
      if (!body.readableEnded) body.destroy();
    });
    body.pipe(res);
  });
}

/** A parcel of the batch read from `path` through its own FileReadStream within `budget`. */
function fileParcel(path: string, data: Buffer, budget: ReadBufferBudget): BatchParcel {
  return {
    sha256: sha256(data),
    size: data.length,
    mediaType: 'application/octet-stream',
    read: async () => new FileReadStream(await open(path, 'r'), 0, data.length - 1, budget),
  };
}

t.test('piped into responses, parcels read from files go out within the read buffer budget', async (t) => {
  const path = join(t.testdir(), 'data');
  const data = randomBytes(stoppedReaderBytes());
  writeFileSync(path, data);
  const budget = stoppedReaderBudget();
  const parcels = (): BatchParcel[] => [
    { sha256: sha256(one), size: one.length, mediaType: 'text/plain', read: () => one },
    fileParcel(path, data, budget),
    { sha256: sha256(two), size: two.length, mediaType: 'text/plain', read: async () => Readable.from([two]) },
  ];
  const origin = await serveBatch(t, parcels);
  const clients = 12;
  const stopped = stopReading(t, Number(new URL(origin).port), '/', clients);
  await checkStoppedDownloadsHeld(t, budget, clients);
  const response = await fetch(origin);
  const body = Buffer.from(await response.arrayBuffer());
  t.equal(Number(response.headers.get('content-length')), body.length, 'a download beside them gets its whole body');
  const expected = await bytesOf(batchDownload(parcels()).body());
  // Each body has a boundary of its own.
  const unbounded = (text: Buffer): string => {
    const latin1 = text.toString('latin1');
    return latin1.replaceAll(/^--(\S+)\r\n/.exec(latin1)?.[1] ?? '', 'BOUNDARY');
  };
  t.ok(unbounded(body) === unbounded(expected), 'the same bytes as the body read as a Readable, boundaries aside');
  for (const socket of stopped) socket.destroy();
  t.equal(await settled(() => budget.held + budget.open, 200, 30_000), 0, 'once the clients go, every buffer is given back and every file closed');
});

t.test('piped into a response, a parcel that fails cuts the response off and leaves no file open', async (t) => {
  const path = join(t.testdir(), 'data');
  const data = randomBytes(3 << 20);
  writeFileSync(path, data);
  const budget = new ReadBufferBudget();
  let failure: 'rejected' | 'cut short' = 'rejected';
  const origin = await serveBatch(t, () => [
    { sha256: sha256(one), size: one.length, mediaType: 'text/plain', read: () => one },
    failure === 'rejected' ? { sha256: sha256(two), size: two.length, mediaType: 'text/plain', read: () => Promise.reject(new Error('gone')) } : fileParcel(path, data, budget),
  ]);
  await t.rejects(fetch(origin).then((response) => response.arrayBuffer()), 'a parcel whose read fails');
  failure = 'cut short';
  truncateSync(path, 1 << 20);
  await t.rejects(fetch(origin).then((response) => response.arrayBuffer()), 'a file shorter than its parcel');
  t.equal(await settled(() => budget.held + budget.open, 200, 30_000), 0, 'the file is closed');
});
