/**
 * Receiving a parcel upload, shared by every ParcelStore: reads the stream to its end while
 * hashing it, enforces the declared size as the data arrives, and hands the bytes to the
 * store's sink in batches (written in order, a bounded number waiting), with the stream
 * semantics ParcelStore.put promises (stream errors rethrown as they are, a premature close
 * rejected, the caller's stream left paused and detached, never destroyed).
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

import { BindleError } from '../../core/errors/bindle-error.js';

/** Where a store writes an upload's bytes. */
export interface UploadSink {
  /**
   * A batch goes to `write` once this many bytes are gathered (so every batch but the last has
   * at least this many bytes; a batch can be larger by less than one received chunk).
   */
  readonly batchBytes: number;
  /** Full batches that may wait for `write` while the next one fills; then reading pauses. */
  readonly maxQueued: number;
  /**
   * Stores one batch. Batches are written strictly one after the other, in stream order; a
   * rejection fails the upload. `chunks` are the received chunks themselves (small ones copied
   * together), not copies: they must not be changed.
   */
  write(chunks: Buffer[], size: number): Promise<void>;
}

/**
 * Received chunks under SMALL_CHUNK bytes are first copied together into STAGING_BYTES buffers,
 * so a batch is never a list of thousands of tiny pieces. A staging buffer is never larger than
 * the bytes still to come: a small parcel's is its size, taken from Node's shared buffer pool,
 * not a 64 KiB allocation of its own per upload (which the garbage collector counts as external
 * memory, so 1000 small uploads made 64 MB of it).
 */
const SMALL_CHUNK = 16 * 1024;
const STAGING_BYTES = 64 * 1024;

function toBuffer(chunk: unknown): Buffer | undefined {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  return undefined;
}

/**
 * Reads `data` to its end into `sink`, hashing as it goes, and resolves with the sha256 hex
 * digest once every batch is written. Rejects with size_mismatch as soon as more than
 * `expectedSize` bytes arrive, or at the end if fewer did; with the stream's own error if it
 * errors; with bad_request if it closes before its end. On rejection it leaves `data` paused
 * and detached, and every write it started has settled.
 */
export function receiveParcel(data: Readable, expectedSize: number, sink: UploadSink): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const hash = createHash('sha256');
    let received = 0;
    /** Bytes handed to `add` so far (all of `received` once a chunk is added). */
    let added = 0;
    /** Data not yet written: chunks kept as they arrived, small ones gathered in `staging`. */
    let batch: Buffer[] = [];
    let batched = 0;
    let staging: Buffer | undefined;
    let staged = 0;
    let writes: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let settled = false;

    const detach = (): void => {
      data.off('data', onData);
      data.off('end', onEnd);
      data.off('error', onError);
      data.off('close', onClose);
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      detach();
      data.pause();
      const rejectWith = (): void => reject(err instanceof Error ? err : new Error(String(err)));
      writes.then(rejectWith, rejectWith);
    };
    const endStaging = (): void => {
      if (staging === undefined || staged === 0) return;
      batch.push(staging.subarray(0, staged));
      staging = undefined;
      staged = 0;
    };
    const add = (bytes: Buffer): void => {
      const before = added;
      added += bytes.length;
      batched += bytes.length;
      if (bytes.length >= SMALL_CHUNK) {
        endStaging();
        batch.push(bytes);
        return;
      }
      for (let offset = 0; offset < bytes.length; ) {
        staging ??= Buffer.allocUnsafe(Math.min(STAGING_BYTES, expectedSize - before - offset));
        const copied = bytes.copy(staging, staged, offset);
        staged += copied;
        offset += copied;
        if (staged === staging.length) endStaging();
      }
    };
    /** Queues the batch's write; resolves once the writes queued before it are done. */
    const flush = (): Promise<void> => {
      endStaging();
      const chunks = batch;
      const size = batched;
      batch = [];
      batched = 0;
      inFlight++;
      const before = writes;
      writes = before
        .then(() => sink.write(chunks, size))
        .finally(() => {
          inFlight--;
        });
      writes.catch(fail);
      return before;
    };
    function onData(chunk: unknown): void {
      if (settled) return;
      const bytes = toBuffer(chunk);
      if (bytes === undefined) {
        fail(new BindleError('bad_request', 'parcel data stream yielded something other than bytes'));
        return;
      }
      if (received + bytes.length > expectedSize) {
        fail(new BindleError('size_mismatch', `parcel data is larger than its declared size of ${expectedSize} bytes`));
        return;
      }
      received += bytes.length;
      hash.update(bytes);
      add(bytes);
      if (batched < sink.batchBytes) return;
      const flushed = flush();
      if (inFlight >= sink.maxQueued) {
        data.pause();
        flushed.then(() => {
          if (!settled) data.resume();
        }, fail);
      }
    }
    function onEnd(): void {
      if (settled) return;
      settled = true;
      detach();
      if (batched > 0) void flush();
      writes.then(() => {
        if (received !== expectedSize) {
          reject(new BindleError('size_mismatch', `parcel data has ${received} bytes, but its declared size is ${expectedSize}`));
        } else {
          resolve(hash.digest('hex'));
        }
      }, reject);
    }
    function onError(err: unknown): void {
      fail(err);
    }
    function onClose(): void {
      fail(new BindleError('bad_request', `parcel data stream closed after ${received} of ${expectedSize} bytes`));
    }

    if (data.errored) {
      fail(data.errored);
      return;
    }
    if (data.readableEnded) {
      onEnd();
      return;
    }
    if (data.destroyed) {
      fail(new BindleError('bad_request', 'parcel data stream was destroyed before it was read'));
      return;
    }
    data.on('data', onData);
    data.on('end', onEnd);
    data.on('error', onError);
    data.on('close', onClose);
    data.resume();
  });
}
