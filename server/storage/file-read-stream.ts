/**
 * FileReadStream: the bytes of an opened file, or of a byte range of it, as a Readable (what
 * FileParcelStore.openRead returns). Consumed as any Readable (`for await`, 'data', `read()`,
 * or piped into anything but an HTTP response) it reads into a new buffer per chunk, as
 * fs.ReadStream does: those chunks are the consumer's to keep. Piped into an HTTP response (how
 * Fastify sends a stream body), it reads into 1 MiB buffers taken from a small process-wide
 * pool, and a buffer goes back to the pool only once the response's write callback has come
 * without an error (the bytes have left it: the socket no longer refers to them). A download
 * then allocates no buffers: fresh 1 MiB ones are external memory to V8, and a 100 MiB download
 * made the server run ~3 full garbage collections of its whole heap (~4 ms each) per download.
 * At most one read runs at a time, and at most two writes wait (reading overlaps sending, and a
 * download holds two buffers, as a stream piped with a 1 MiB high-water mark does).
 * The file ending before the range does is an error (the stream is destroyed with it), never a
 * short body. Destroying the stream closes the file, after a read under way has come back.
 */
import { read as readCallback } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { OutgoingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** Size of every read (and of the pooled buffers): 1 MiB reads move big files fastest here. */
export const READ_CHUNK = 1 << 20;
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

  /** Reads bytes `start`..`end` (inclusive; `start <= end`) of the open file `handle`, which it closes when done. */
  constructor(handle: FileHandle, start: number, end: number) {
    super({ highWaterMark: Math.min(READ_CHUNK, end - start + 1) });
    this.#handle = handle;
    this.#position = start;
    this.#end = end;
  }

  override _read(): void {
    if (this.#sending) return;
    const buffer = Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, this.#end - this.#position + 1));
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
    const close = (): void => {
      this.#handle.close().then(
        () => callback(error),
        (closeError: unknown) => callback(error ?? (closeError instanceof Error ? closeError : new Error(String(closeError)))),
      );
    };
    if (this.#reading) this.#closeAfterRead = close;
    else close();
  }

  /** Sends the rest of the range into `response` through pooled buffers, then ends the stream (and the response, when `end`). */
  #send(response: OutgoingMessage, end: boolean): void {
    let waiting = 0;
    const pump = (): void => {
      if (this.destroyed || this.#reading || waiting >= MAX_WRITES_WAITING || this.#position > this.#end) return;
      const buffer = takeBuffer();
      this.#readInto(buffer.subarray(0, Math.min(READ_CHUNK, this.#end - this.#position + 1)), (bytes) => {
        waiting++;
        response.write(bytes, (err) => {
          waiting--;
          // On an error the socket may still refer to the bytes: the buffer is left to the collector.
          if (err != null) {
            this.destroy();
            return;
          }
          returnBuffer(buffer);
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
