/**
 * Receiving a parcel upload, shared by every ParcelStore: reads the stream to its end while
 * hashing it, enforces the declared size as the data arrives, and hands the bytes to the
 * store's sink in batches (written in order, a bounded number waiting), with the stream
 * semantics ParcelStore.put promises (stream errors rethrown as they are, a premature close
 * rejected, the caller's stream left paused and detached, never destroyed).
 * What the uploads under way hold in received bytes not yet written is bounded by one budget for
 * the process (processUploadBudget): a client that sends part of a parcel and stops (or sends a
 * byte now and then, which no idle timeout cuts off) leaves its unwritten batch in memory, so with
 * 1 MiB batches each such upload held ~1 MiB, and the connection cap's thousands of them would
 * have exhausted the machine's memory (1000 such uploads: +1 GiB of RSS). Batches are 1 MiB
 * while few uploads are open, smaller as more are, down to MIN_UPLOAD_BATCH; an upload that
 * keeps going is never refused or made to wait, it only writes in smaller pieces.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';

import { BindleError } from '../../core/errors/bindle-error.js';
import { BufferBudget } from './buffer-budget.js';
import { assertDigestMatches } from './parcel-store.js';

/** The largest batch the upload budget gives: 1 MiB writes move big parcels fastest here. */
export const MAX_UPLOAD_BATCH = 1 << 20;
/** The smallest batch it gives, however many uploads are open. */
export const MIN_UPLOAD_BATCH = 16 << 10;
/**
 * The process budget's share: open uploads batch up to this much together (two batches each),
 * 16 MiB: up to 8 uploads at once batch 1 MiB each.
 */
export const UPLOAD_SHARE_BYTES = 16 << 20;
/** The process budget's cap on unwritten received bytes before every batch is the smallest, 128 MiB. */
export const UPLOAD_CAP_BYTES = 128 << 20;

/**
 * The uploads' BufferBudget. An upload is open from the start of receiveParcel until it has
 * received its last byte or failed; it holds each received byte until the batch holding it is
 * written (or dropped, when the upload fails). A store's own buffers beyond its sink's batches
 * (S3's part buffers) are not counted.
 */
export function uploadBudget(share: number = UPLOAD_SHARE_BYTES, cap: number = UPLOAD_CAP_BYTES): BufferBudget {
  return new BufferBudget(MAX_UPLOAD_BATCH, MIN_UPLOAD_BATCH, share, cap);
}

/** The budget every upload shares unless it is given one of its own. */
export const processUploadBudget = uploadBudget();

/** How a store receives uploads: options every store's `open` takes. */
export interface ReceiveOptions {
  /** The budget the store's uploads draw their batches from (default processUploadBudget). */
  uploadBudget?: BufferBudget;
}

/** Where a store writes an upload's bytes. */
export interface UploadSink {
  /**
   * A batch goes to `write` once this many bytes are gathered, or fewer while the upload budget
   * gives smaller batches (never fewer than MIN_UPLOAD_BATCH, or this if it is smaller): every
   * batch but the last has at least the size in force when it was sent, and can be larger by
   * less than one received chunk.
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
 * and detached, and every write it started has settled. Its batches are sized by `budget`.
 */
export function receiveParcel(data: Readable, expectedSize: number, sink: UploadSink, budget: BufferBudget = processUploadBudget): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    budget.opened();
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
      budget.closed();
      detach();
      data.pause();
      // The batch not yet handed on is never written.
      budget.release(batched);
      batch = [];
      batched = 0;
      staging = undefined;
      staged = 0;
      const rejectWith = (): void => reject(err instanceof Error ? err : new Error(String(err)));
      writes.then(rejectWith, rejectWith);
    };
    const endStaging = (): void => {
      if (staging === undefined || staged === 0) return;
      batch.push(staging.subarray(0, staged));
      staging = undefined;
      staged = 0;
    };
    /** Adds a received chunk to the batch, staged in buffers of at most `limit` bytes when small. */
    const add = (bytes: Buffer, limit: number): void => {
      const before = added;
      added += bytes.length;
      batched += bytes.length;
      budget.take(bytes.length);
      if (bytes.length >= SMALL_CHUNK) {
        endStaging();
        batch.push(bytes);
        return;
      }
      for (let offset = 0; offset < bytes.length; ) {
        staging ??= Buffer.allocUnsafe(Math.min(STAGING_BYTES, limit, expectedSize - before - offset));
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
          budget.release(size);
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
      const limit = budget.size(sink.batchBytes);
      add(bytes, limit);
      if (batched < limit) return;
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
      budget.closed();
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

/** A sink that keeps nothing: for data that is only checked (checkParcelBytes). */
const DISCARD: UploadSink = { batchBytes: MAX_UPLOAD_BATCH, maxQueued: 1, write: () => Promise.resolve() };

/**
 * Reads `data` only to check that it is the parcel `sha256` of `expectedSize` bytes (one already
 * stored, say), keeping none of it: receiveParcel's size_mismatch, then digest_mismatch.
 */
export async function checkParcelBytes(sha256: string, expectedSize: number, data: Readable): Promise<void> {
  assertDigestMatches(sha256, await receiveParcel(data, expectedSize, DISCARD));
}

/**
 * A pass-through that hashes and counts what flows through it, for a caller that hands a stream
 * to ParcelStore.put and must know afterwards whether all of it went through: a put refused
 * `already_exists` at commit time (another upload stored the parcel first) has read the whole
 * stream, while one refused before reading has read none of it.
 */
export class PassedBytes extends Transform {
  #hash: Hash = createHash('sha256');
  #bytes = 0;
  #digest: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    callback();
  }

  /** True once the whole stream went through and it was exactly the parcel `sha256` of `size` bytes. */
  proves(sha256: string, size: number): boolean {
    return this.#digest === sha256 && this.#bytes === size;
  }
}
