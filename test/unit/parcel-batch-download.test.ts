/**
 * The batch download's reply (server/http/parcel-batch-download.ts): the `parcels` list is read
 * strictly, the body is exactly as long as its Content-Length says, each parcel is read only when
 * the body gets to it, and a parcel that cannot be read ends the body with that error.
 */
import { Readable } from 'node:stream';
import t from 'tap';
import { batchDownload, MAX_BATCH_DOWNLOAD_PARCELS, parseParcelList, type BatchParcel } from '../../server/http/parcel-batch-download.js';
import { sha256 } from '../helpers/bindles.js';

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
