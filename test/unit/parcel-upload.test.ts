/**
 * server/storage/parcel-upload: receiveParcel's batching of small received chunks (copied
 * together, in staging buffers no larger than the bytes still to come) and the bytes and digest
 * it hands on.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import t from 'tap';

import { receiveParcel, type UploadSink } from '../../server/storage/parcel-upload.js';

/** A sink that keeps every batch as given. */
function recordingSink(batchBytes = 1 << 20): { sink: UploadSink; batches: Buffer[][] } {
  const batches: Buffer[][] = [];
  return {
    batches,
    sink: {
      batchBytes,
      maxQueued: 2,
      write: (chunks) => {
        batches.push(chunks);
        return Promise.resolve();
      },
    },
  };
}

/** Sends `data` in pieces of `piece` bytes, then ends. */
function streamIn(data: Buffer, piece: number): PassThrough {
  const stream = new PassThrough();
  for (let offset = 0; offset < data.length; offset += piece) stream.write(data.subarray(offset, offset + piece));
  stream.end();
  return stream;
}

const deterministic = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff));

t.test('a small parcel in small chunks is staged in a buffer of its size, not a 64 KiB one per upload', async (t) => {
  const data = deterministic(1024);
  const { sink, batches } = recordingSink();
  const digest = await receiveParcel(streamIn(data, 300), data.length, sink);
  t.equal(digest, createHash('sha256').update(data).digest('hex'));
  t.equal(batches.length, 1, 'one batch');
  const chunks = batches[0] ?? [];
  t.same(Buffer.concat(chunks), data, 'the bytes, in order');
  for (const chunk of chunks) t.ok(chunk.buffer.byteLength < 64 * 1024, `staged in a ${chunk.buffer.byteLength}-byte allocation`);
});

t.test('staging across 64 KiB boundaries: the last staging buffer holds just the rest', async (t) => {
  const data = deterministic(70_000);
  const { sink, batches } = recordingSink(32 * 1024);
  const digest = await receiveParcel(streamIn(data, 7), data.length, sink);
  t.equal(digest, createHash('sha256').update(data).digest('hex'));
  t.same(Buffer.concat(batches.flat()), data, 'the bytes, in order');
  t.ok(
    batches.every((batch, i) => i === batches.length - 1 || batch.reduce((n, c) => n + c.length, 0) >= 32 * 1024),
    'every batch but the last holds at least batchBytes',
  );
});

t.test('small and large chunks mixed, and a parcel that arrives short, then long', async (t) => {
  const data = deterministic(100_000);
  const stream = new PassThrough();
  stream.write(data.subarray(0, 10));
  stream.write(data.subarray(10, 40_010));
  stream.write(data.subarray(40_010, 40_020));
  stream.end(data.subarray(40_020));
  const { sink, batches } = recordingSink();
  t.equal(await receiveParcel(stream, data.length, sink), createHash('sha256').update(data).digest('hex'));
  t.same(Buffer.concat(batches.flat()), data);
  await t.rejects(receiveParcel(streamIn(data, 1000), data.length + 1, recordingSink().sink), { code: 'size_mismatch' });
  await t.rejects(receiveParcel(streamIn(data, 1000), data.length - 1, recordingSink().sink), { code: 'size_mismatch' });
});
