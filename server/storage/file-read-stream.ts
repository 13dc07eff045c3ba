/**
 * FileReadStream: the bytes of an opened file, or of a byte range of it, as a Readable (what
 * FileParcelStore.openRead returns). Consumed as any Readable (`for await`, 'data', `read()`,
 * or piped into anything but an HTTP response) it reads into a new buffer per chunk, as
 * fs.ReadStream does: those chunks are the consumer's to keep. Piped into an HTTP response (how
 * Fastify sends a stream body), its 1 MiB reads go into buffers taken from a small process-wide
 * pool, and a buffer goes back to the pool only once the response's write callback has come
 * without an error (the bytes have left it: the socket no longer refers to them). A download
 * then allocates no buffers: fresh 1 MiB ones are external memory to V8, and a 100 MiB download
 * made the server run ~3 full garbage collections of its whole heap (~4 ms each) per download.
 * (Smaller reads, which the budget below asks for under load, get buffers of their own.)
 * At most one read runs at a time, and at most two writes wait (reading overlaps sending, and a
 * download holds two buffers, as a stream piped with a 1 MiB high-water mark does).
 * The file ending before the range does is an error (the stream is destroyed with it), never a
 * short body. Destroying the stream closes the file, after a read under way has come back.
 *
 * How much the downloads hold together is bounded by a ReadBufferBudget (one for the process
 * unless a stream is given its own): a client that stops reading keeps the buffers its response
 * was given until the send timeout closes its connection (a client that reads a byte now and then,
 * for ever), so with 1 MiB reads each such download held ~1.5 MiB, and the connection cap's
 * thousands of them would have exhausted the machine's memory (400 paused downloads of a 100 MiB
 * parcel: +560 to +780 MiB of RSS). Each read is sized when it is made: 1 MiB while the downloads open
 * are few and hold little, smaller as more are open (an even share of the budget, two reads
 * each) or as their held buffers near the budget's cap, down to MIN_READ_CHUNK. A download that
 * keeps going is never refused or made to wait; it only reads in smaller pieces.
 */
import { read as readCallback } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { OutgoingMessage } from 'node:http';
import { Readable } from 'node:stream';

import { BufferBudget } from './buffer-budget.js';

/** Size of a read while the budget allows (and of the pooled buffers): 1 MiB reads move big files fastest here. */
export const READ_CHUNK = 1 << 20;
/** The smallest read the budget asks for (what Go's io.Copy, the distribution registry's, uses is 32 KiB). */
export const MIN_READ_CHUNK = 16 << 10;
/** The default budget's share: open downloads read up to this much together (two reads each), 64 MiB. */
export const DEFAULT_SHARE_BYTES = 64 << 20;
/** The default budget's cap on what sending downloads hold together before every read is the smallest, 128 MiB. */
export const DEFAULT_CAP_BYTES = 128 << 20;

/**
 * The downloads' BufferBudget: reads of READ_CHUNK while it allows, never below MIN_READ_CHUNK.
 * A stream is open from its construction (its file is open) to its destruction (its file is
 * closed). A sending stream (piped into an HTTP response) holds each buffer from its read until
 * the response's write of it has come back, or the stream is destroyed.
 */
export class ReadBufferBudget extends BufferBudget {
  constructor(share: number = DEFAULT_SHARE_BYTES, cap: number = DEFAULT_CAP_BYTES) {
    super(READ_CHUNK, MIN_READ_CHUNK, share, cap);
  }
}

/** The process's budget, which every stream not given one of its own shares. */
export const processReadBudget = new ReadBufferBudget();

/** Pooled buffers kept for later downloads (two per download under way). */
const POOL_MAX = 4;
/** Writes into a response that may wait for the socket while the next chunk is read. */
const MAX_WRITES_WAITING = 2;

const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK);
}

function returnBuffer(buffer: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(buffer);
}

/** How many pooled buffers are waiting to be reused (for tests). */
export function pooledBuffers(): number {
  return pool.length;
}

export class FileReadStream extends Readable {
  readonly #handle: FileHandle;
  /** The next byte to read. */
  #position: number;
  /** The last byte to read (inclusive). */
  readonly #end: number;
  /** An fs.read is under way: the file may not be closed until it comes back. */
  #reading = false;
  /** Closes the file once the read under way has come back (set by a destroy during a read). */
  #closeAfterRead: (() => void) | undefined;
  /** Piped into a response: bytes go out through the pooled buffers, `_read` reads nothing. */
  #sending = false;
  readonly #budget: ReadBufferBudget;

  /**
   * Reads bytes `start`..`end` (inclusive; `start <= end`) of the open file `handle`, which it
   * closes when done, within `budget`. Read as a Readable, it reads ahead up to one read's size
   * as the budget gives it now.
   */
  constructor(handle: FileHandle, start: number, end: number, budget: ReadBufferBudget = processReadBudget) {
    budget.opened();
    super({ highWaterMark: budget.size(end - start + 1) });
    this.#handle = handle;
    this.#position = start;
    this.#end = end;
    this.#budget = budget;
  }

  override _read(): void {
    if (this.#sending) return;
    const buffer = Buffer.allocUnsafeSlow(this.#budget.size(this.#end - this.#position + 1));
    this.#readInto(buffer, (bytes) => {
      this.push(bytes);
      if (this.#position > this.#end) this.push(null);
    });
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean | undefined }): T {
    const untouched = !this.#sending && this.readableFlowing === null && this.readableLength === 0 && !this.destroyed && !this.readableEnded;
    if (!untouched || !(destination instanceof OutgoingMessage) || this.listenerCount('data') > 0) return super.pipe(destination, options);
    this.#sending = true;
    destination.emit('pipe', this);
    this.#send(destination, options?.end !== false);
    return destination;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#budget.closed();
    const close = (): void => {
      this.#handle.close().then(
        () => callback(error),
        (closeError: unknown) => callback(error ?? (closeError instanceof Error ? closeError : new Error(String(closeError)))),
      );
    };
    if (this.#reading) this.#closeAfterRead = close;
    else close();
  }

  /**
   * Sends the rest of the range into `response` through buffers held within the budget (pooled
   * when full-size), then ends the stream (and the response, when `end`).
   */
  #send(response: OutgoingMessage, end: boolean): void {
    let waiting = 0;
    const budget = this.#budget;
    const pump = (): void => {
      if (this.destroyed || this.#reading || waiting >= MAX_WRITES_WAITING || this.#position > this.#end) return;
      // The budget's read size now, and this read's (the file's last one may be shorter): while
      // the budget allows full-size reads, the read goes into a pooled buffer, the last one too.
      const chunk = budget.size(READ_CHUNK);
      const size = Math.min(chunk, this.#end - this.#position + 1);
      const pooled = chunk === READ_CHUNK ? takeBuffer() : undefined;
      const buffer = pooled?.subarray(0, size) ?? Buffer.allocUnsafeSlow(size);
      budget.take(size);
      // Given back when its write has come back (Node calls back a write the socket will never
      // make too, when the socket is destroyed), or when the stream is destroyed before the
      // buffer was written.
      const unwritten = (): void => budget.release(size);
      this.once('close', unwritten);
      this.#readInto(buffer, (bytes) => {
        this.off('close', unwritten);
        waiting++;
        response.write(bytes, (err) => {
          waiting--;
          budget.release(size);
          // On an error the socket may still refer to the bytes: the buffer is left to the collector.
          if (err != null) {
            this.destroy();
            return;
          }
          if (pooled !== undefined) returnBuffer(pooled);
          pump();
        });
        if (this.#position <= this.#end) {
          pump();
          return;
        }
        if (end) response.end();
        this.push(null);
        this.read(0);
      });
    };
    pump();
  }

  /** Fills `target` from the current position, then calls `done` with the bytes read (unless the stream is destroyed meanwhile, or fails). */
  #readInto(target: Buffer, done: (bytes: Buffer) => void): void {
    this.#reading = true;
    readCallback(this.#handle.fd, target, 0, target.length, this.#position, (err, bytesRead) => {
      this.#reading = false;
      const close = this.#closeAfterRead;
      if (close !== undefined) {
        this.#closeAfterRead = undefined;
        close();
        return;
      }
      if (this.destroyed) return;
      if (err !== null) {
        this.destroy(err);
        return;
      }
      if (bytesRead === 0) {
        this.destroy(new Error(`the file ended at byte ${this.#position}, before byte ${this.#end} of the range read`));
        return;
      }
      this.#position += bytesRead;
      done(bytesRead === target.length ? target : target.subarray(0, bytesRead));
    });
  }
}
