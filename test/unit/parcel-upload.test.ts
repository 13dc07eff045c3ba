/**
 * server/storage/parcel-upload: receiveParcel's batching of small received chunks (copied
 * together, in staging buffers no larger than the bytes still to come), the bytes and digest
 * it hands on, and the upload budget: what uploads hold, and the batch sizes it gives them.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import t from 'tap';

import { BufferBudget } from '../../server/storage/buffer-budget.js';
import { MIN_UPLOAD_BATCH, receiveParcel, uploadBudget, type UploadSink } from '../../server/storage/parcel-upload.js';

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

/** Lets the streams' queued events run. */
async function drain(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

t.test('the budget counts an upload as open while it receives, and what it holds until written; both return to zero', async (t) => {
  const budget = uploadBudget();
  const data = deterministic(3 << 20);
  const stream = new PassThrough();
  const { sink, batches } = recordingSink();
  const receiving = receiveParcel(stream, data.length, sink, budget);
  t.equal(budget.open, 1, 'open from the start');
  stream.write(data.subarray(0, 100_000));
  await drain();
  t.equal(budget.held, 100_000, 'the unwritten part of a batch is held');
  t.equal(batches.length, 0);
  stream.end(data.subarray(100_000));
  t.equal(await receiving, createHash('sha256').update(data).digest('hex'));
  t.same(Buffer.concat(batches.flat()), data);
  t.same([budget.open, budget.held], [0, 0], 'received: nothing open, nothing held');

  await t.rejects(receiveParcel(streamIn(data, 65_536), data.length - 1, recordingSink().sink, budget), { code: 'size_mismatch' });
  t.same([budget.open, budget.held], [0, 0], 'too long: nothing open, nothing held');
  const cut = new PassThrough();
  const cutReceiving = receiveParcel(cut, data.length, recordingSink().sink, budget);
  cut.write(data.subarray(0, 300_000));
  await drain();
  t.equal(budget.held, 300_000);
  cut.destroy();
  await t.rejects(cutReceiving, { code: 'bad_request' });
  t.same([budget.open, budget.held], [0, 0], 'closed early: the unwritten batch is dropped and released');
  const failing: UploadSink = { batchBytes: 1 << 20, maxQueued: 2, write: () => Promise.reject(new Error('disk gone')) };
  await t.rejects(receiveParcel(streamIn(data, 65_536), data.length, failing, budget), { message: 'disk gone' });
  t.same([budget.open, budget.held], [0, 0], 'a failed write: nothing open, nothing held');
});

t.test('uploads stopped part-way hold at most a batch of the size the budget gives, and the rest reaches their sinks', async (t) => {
  const budget = uploadBudget();
  const uploads = 40;
  const sent = (1 << 20) - 1024;
  const data = deterministic(sent);
  const streams = Array.from({ length: uploads }, () => new PassThrough());
  const sinks = streams.map(() => recordingSink());
  const receiving = streams.map((stream, i) => receiveParcel(stream, 4 << 20, (sinks[i] ?? recordingSink()).sink, budget));
  const batch = budget.size(1 << 20);
  t.equal(batch, 128 << 10, `${uploads} open share 16 MiB: batches of 128 KiB, not 1 MiB`);
  for (const stream of streams) for (let offset = 0; offset < sent; offset += 65_536) stream.write(data.subarray(offset, offset + 65_536));
  await drain();
  t.ok(budget.held <= uploads * batch, `held ${budget.held} bytes, within one batch each (1 MiB batches would hold ${uploads * sent})`);
  for (const [i, { batches }] of sinks.entries()) {
    const written = batches.flat().reduce((n, chunk) => n + chunk.length, 0);
    if (written < sent - batch) t.fail(`upload ${i} has only ${written} of its ${sent} bytes written`);
  }
  t.pass('every upload has all but less than a batch written');
  for (const stream of streams) stream.destroy();
  for (const result of receiving) await t.rejects(result, { code: 'bad_request' });
  t.same([budget.open, budget.held], [0, 0], 'closed: nothing open, nothing held');
});

t.test('small chunks are staged in buffers no larger than the batch the budget gives', async (t) => {
  const budget = new BufferBudget(1 << 20, MIN_UPLOAD_BATCH, 1 << 20, 1 << 30);
  for (let i = 0; i < 1000; i++) budget.opened();
  const data = deterministic(200_000);
  const { sink, batches } = recordingSink();
  t.equal(await receiveParcel(streamIn(data, 300), data.length, sink, budget), createHash('sha256').update(data).digest('hex'));
  t.same(Buffer.concat(batches.flat()), data);
  t.ok(batches.length >= Math.floor(data.length / MIN_UPLOAD_BATCH), `${batches.length} batches of about ${MIN_UPLOAD_BATCH} bytes`);
  for (const chunk of batches.flat()) if (chunk.buffer.byteLength > MIN_UPLOAD_BATCH) t.fail(`a ${chunk.buffer.byteLength}-byte staging buffer`);
});
