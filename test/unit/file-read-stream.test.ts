/**
 * FileReadStream (server/storage/file-read-stream.ts): the bytes of a file or a range of it,
 * read as any Readable and piped into HTTP responses (pooled buffers, reused only once a
 * response's write has come back): concurrent responses and later reads get exactly their own
 * bytes, a stream piped into anything else gets chunks it may keep, a file shorter than its range
 * is an error, and destroying the stream closes the file. The read buffer budget sizes reads so
 * that clients which stop reading hold no more than its cap, while a download beside them still
 * gets its bytes.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { serveLocally } from '../helpers/local-server.js';
import { checkStoppedDownloadsHeld, settled, stoppedReaderBudget, stoppedReaderBytes, stopReading } from '../helpers/stopped-readers.js';
import {
  FileReadStream, MIN_READ_CHUNK, pooledBuffers, READ_CHUNK, ReadBufferBudget,
} from '../../server/storage/file-read-stream.js';

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function streamOf(path: string, start: number, end: number): Promise<FileReadStream> {
  return new FileReadStream(await open(path, 'r'), start, end);
}

/** A server on 127.0.0.1 that pipes `streamFor(url)` into each response; stopped at teardown. */
function serve(t: Test, streamFor: (url: string) => Promise<Readable>): Promise<string> {
  return serveLocally(t, (req, res) => {
    streamFor(req.url ?? '/').then(
      (stream) => {
        res.writeHead(200);
        // As Fastify does: a stream that fails after the headers went out cuts the response off.
        stream.on('error', () => res.destroy());
        stream.pipe(res);
      },
      (err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      },
    );
  });
}

async function get(url: string): Promise<Buffer> {
  const response = await fetch(url);
  return Buffer.from(await response.arrayBuffer());
}

const BIG = 5 * READ_CHUNK + 12_345;

t.test('read as a Readable: the whole file, and ranges, in fresh chunks', async (t) => {
  const path = join(t.testdir(), 'data');
  const data = randomBytes(BIG);
  writeFileSync(path, data);
  t.same(await bytesOf(await streamOf(path, 0, BIG - 1)), data);
  t.same(await bytesOf(await streamOf(path, 7, 7)), data.subarray(7, 8));
  t.same(await bytesOf(await streamOf(path, READ_CHUNK - 3, 3 * READ_CHUNK + 2)), data.subarray(READ_CHUNK - 3, 3 * READ_CHUNK + 3));
  const chunks: Buffer[] = [];
  for await (const chunk of (await streamOf(path, 0, BIG - 1)) as AsyncIterable<Buffer>) chunks.push(chunk);
  t.same(
    chunks.map((c) => c.length),
    [READ_CHUNK, READ_CHUNK, READ_CHUNK, READ_CHUNK, READ_CHUNK, 12_345],
    '1 MiB reads, the last one of what is left',
  );
});

t.test('piped into responses: concurrent downloads and ranges each get their own bytes, buffers are reused', async (t) => {
  const dir = t.testdir();
  const files = [randomBytes(BIG), randomBytes(BIG), randomBytes(2 * READ_CHUNK)];
  files.forEach((data, i) => writeFileSync(join(dir, String(i)), data));
  const streams: FileReadStream[] = [];
  const origin = await serve(t, async (url) => {
    const [, name = '0', start = '0', end = ''] = url.split('/');
    const size = files[Number(name)]?.length ?? 0;
    const stream = await streamOf(join(dir, name), Number(start), end === '' ? size - 1 : Number(end));
    streams.push(stream);
    return stream;
  });
  for (let round = 0; round < 3; round++) {
    const bodies = await Promise.all([get(`${origin}/0`), get(`${origin}/1`), get(`${origin}/2`), get(`${origin}/1/5/${READ_CHUNK + 9}`)]);
    t.ok(bodies[0]?.equals(files[0] ?? Buffer.alloc(0)), `round ${round}: file 0`);
    t.ok(bodies[1]?.equals(files[1] ?? Buffer.alloc(0)), `round ${round}: file 1`);
    t.ok(bodies[2]?.equals(files[2] ?? Buffer.alloc(0)), `round ${round}: file 2`);
    t.ok(bodies[3]?.equals(files[1]?.subarray(5, READ_CHUNK + 10) ?? Buffer.alloc(0)), `round ${round}: a range`);
  }
  await Promise.all(streams.map((stream) => finished(stream)));
  t.equal(streams.length, 12);
  t.ok(streams.every((stream) => stream.readableEnded && stream.closed), 'every stream ended and closed its file');
  t.ok(pooledBuffers() > 0, 'buffers went back to the pool');
  t.ok(pooledBuffers() <= 4, 'the pool is bounded');
});

t.test('piped into anything but a response, the chunks are the consumer’s to keep', async (t) => {
  const dir = t.testdir();
  const first = randomBytes(3 * READ_CHUNK);
  const second = randomBytes(3 * READ_CHUNK);
  writeFileSync(join(dir, 'first'), first);
  writeFileSync(join(dir, 'second'), second);
  const origin = await serve(t, () => streamOf(join(dir, 'second'), 0, second.length - 1));
  // A PassThrough keeps the chunks written into it until they are read: had they been pooled
  // buffers, the downloads in between would have overwritten them.
  const kept = new PassThrough({ highWaterMark: 8 * READ_CHUNK });
  await pipeline(await streamOf(join(dir, 'first'), 0, first.length - 1), kept);
  for (let i = 0; i < 2; i++) t.ok((await get(origin)).equals(second));
  t.ok((await bytesOf(kept)).equals(first));
});

t.test('a file shorter than the range is an error, not a short body', async (t) => {
  const path = join(t.testdir(), 'data');
  writeFileSync(path, randomBytes(2 * READ_CHUNK));
  const stream = await streamOf(path, 0, 2 * READ_CHUNK - 1);
  truncateSync(path, READ_CHUNK + 10);
  await t.rejects(bytesOf(stream), /the file ended at byte 1048586/);

  const origin = await serve(t, () => streamOf(path, 0, 2 * READ_CHUNK - 1));
  await t.rejects(get(origin), 'the response is cut off');
});

t.test('destroying the stream closes the file, also while a read is under way', async (t) => {
  const path = join(t.testdir(), 'data');
  writeFileSync(path, randomBytes(BIG));
  const handle = await open(path, 'r');
  const stream = new FileReadStream(handle, 0, BIG - 1);
  stream.once('data', () => stream.destroy());
  await t.rejects(finished(stream), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
  t.equal(handle.fd, -1, 'closed');

  const untouched = await open(path, 'r');
  const idle = new FileReadStream(untouched, 0, BIG - 1);
  idle.destroy();
  await t.rejects(finished(idle));
  t.equal(untouched.fd, -1, 'closed without ever reading');
});

t.test('the budget sizes each read: 1 MiB while downloads are few and hold little, smaller as more are open or hold more', async (t) => {
  const budget = new ReadBufferBudget(64 << 20, 256 << 20);
  budget.opened();
  t.equal(budget.size(100 << 20), READ_CHUNK, 'one download: 1 MiB');
  t.equal(budget.size(12_345), 12_345, 'never more than is left');
  for (let i = 1; i < 32; i++) budget.opened();
  t.equal(budget.size(100 << 20), READ_CHUNK, '32 open: still 1 MiB (64 MiB, two reads each)');
  budget.opened();
  t.equal(budget.size(100 << 20), 512 << 10, '33 open: the largest power of two within the share');
  for (let i = 33; i < 10_000; i++) budget.opened();
  t.equal(budget.size(100 << 20), MIN_READ_CHUNK, 'however many are open, never below the smallest read');
  const few = new ReadBufferBudget(64 << 20, 256 << 20);
  few.opened();
  few.take(255 << 20);
  t.equal(few.size(100 << 20), 512 << 10, 'half of what is left under the cap');
  few.take(1 << 20);
  t.equal(few.size(100 << 20), MIN_READ_CHUNK, 'at the cap: the smallest read');
  few.release(256 << 20);
  t.equal(few.size(100 << 20), READ_CHUNK, 'given back: 1 MiB again');
});

t.test('clients that stop reading hold no more than the budget allows, and a download beside them gets its bytes', async (t) => {
  const path = join(t.testdir(), 'data');
  const data = randomBytes(stoppedReaderBytes());
  writeFileSync(path, data);
  const budget = stoppedReaderBudget();
  const origin = await serve(t, async () => new FileReadStream(await open(path, 'r'), 0, data.length - 1, budget));
  const clients = 12;
  const stopped = stopReading(t, Number(new URL(origin).port), '/', clients);
  await checkStoppedDownloadsHeld(t, budget, clients);
  t.ok((await get(origin)).equals(data), 'a download beside them gets its bytes');
  for (const socket of stopped) socket.destroy();
  t.equal(await settled(() => budget.held + budget.open, 200, 30_000), 0, 'once they go, every buffer and stream is given back');
});
