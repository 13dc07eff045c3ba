/**
 * Checking parcel bytes against their label: a pass-through stream that counts and hashes what
 * flows through it and fails with `size_mismatch` or `digest_mismatch` when it is not what the
 * label promises, and the same check for a file on disk. These are the only parcel checks and
 * mismatch messages of the client side (library, CLI, kubelet).
 *
 * Files are read in chunks of up to 1 MiB, the next read running while the previous chunk is
 * hashed: a read is a thread-pool round trip, so small reads would cost more than the copy.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, read } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import type { Label } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { openDescriptor } from '../../core/fs-atomic.js';

/** read(2) through the callback API, on a bare descriptor (no FileHandle). */
const readDescriptor = promisify(read);

/** Size and lowercase hex sha256 of some bytes. */
export interface Digest {
  size: number;
  sha256: string;
}

/** Maps an error that reaches the stream from elsewhere (e.g. the network) before it is emitted. */
export type ErrorMapper = (err: Error) => Error;

/**
 * Passes bytes through unchanged while checking them against `label`:
 * - more bytes than `label.size` → `size_mismatch` as soon as it happens;
 * - at the end, fewer bytes → `size_mismatch`, a different sha256 → `digest_mismatch`.
 * The error is emitted instead of the end, so a consumer never sees a clean end of wrong data.
 * `what` names the data in messages (e.g. `parcel 23f3… (chip.txt) of x/1.0.0`).
 * Errors that destroy the stream from outside go through `mapError` (when given).
 */
export class ParcelDigestStream extends Transform {
  readonly #label: Label;
  readonly #what: string;
  readonly #hash: Hash = createHash('sha256');
  readonly #mapError: ErrorMapper | undefined;
  #size = 0;

  constructor(label: Label, what: string, mapError?: ErrorMapper) {
    super();
    this.#label = label;
    this.#what = what;
    this.#mapError = mapError;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#size;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#size += chunk.length;
    if (this.#size > this.#label.size) {
      callback(sizeMismatch(this.#what, `more than ${this.#label.size} bytes`, this.#label.size));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#size !== this.#label.size) {
      callback(sizeMismatch(this.#what, `${this.#size} bytes`, this.#label.size));
      return;
    }
    const sha256 = this.#hash.digest('hex');
    if (sha256 !== this.#label.sha256) {
      callback(digestMismatch(this.#what, sha256, this.#label.sha256));
      return;
    }
    callback();
  }

  /**
   * Maps the error here rather than in `_destroy`: the stream records the error it is destroyed
   * with, and a consumer that starts reading only after that (e.g. once its file is open) is
   * given the recorded one.
   */
  override destroy(err?: Error): this {
    return super.destroy(err === undefined || this.#mapError === undefined || err instanceof BindleError ? err : this.#mapError(err));
  }
}

export function sizeMismatch(what: string, got: string, expected: number): BindleError {
  return new BindleError('size_mismatch', `${what}: got ${got}, but its label says ${expected} bytes`);
}

export function digestMismatch(what: string, got: string, expected: string): BindleError {
  return new BindleError('digest_mismatch', `${what}: the data has sha256 ${got}, but its label says ${expected}`);
}

/** Size and sha256 of a Buffer. */
export function digestOf(data: Uint8Array): Digest {
  return { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/**
 * A small parcel: one that the client handles as one Buffer rather than as a stream. Reading a
 * standalone bindle reads these files whole (and a push sends the bytes read), and a download
 * gathers one in memory, checks it in one step and writes it with one call: for such sizes the
 * stream machinery costs more than the bytes.
 */
export const SMALL_PARCEL_BYTES = 64 * 1024;

/** Files are read in chunks of at most this many bytes. */
export const READ_CHUNK_BYTES = 1 << 20;

/** Size and sha256 of a file, read in chunks of up to 1 MiB; `onBytes` is told each chunk's size as it is hashed. */
export async function digestFile(path: string, onBytes?: (bytes: number) => void): Promise<Digest> {
  const handle = await open(path, 'r');
  try {
    return await digestHandle(handle, (await handle.stat()).size, onBytes);
  } finally {
    await handle.close();
  }
}

/**
 * Checks the file at `path` against `label`: its size first (a file of the wrong size is not
 * hashed), then its sha256. Throws `size_mismatch` or `digest_mismatch` naming `what`; a file
 * system error (ENOENT when there is no file) is thrown as it is.
 */
export async function checkFile(path: string, label: Label, what: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size !== label.size) throw sizeMismatch(what, `${size} bytes`, label.size);
    checkDigest(await digestHandle(handle, size), label, what);
  } finally {
    await handle.close();
  }
}

/**
 * Reads the file at `path` whole and checks it against `label` like checkFile; resolves with its
 * bytes. Meant for small parcels (SMALL_PARCEL_BYTES): two thread-pool calls, the open and one
 * read of exactly the label's size (a file of another size is not read at all). The size check
 * (fstat) and the close touch only the inode the open has just brought into memory and run
 * synchronously, microseconds each, less than a round trip through the pool (1000 files of
 * 4 KiB: four calls each made ~120 ms of CPU, two ~60).
 *
 * On the fs callback API, not FileHandle: for many small files FileHandle's bookkeeping cost
 * the main thread more than the reads.
 */
export async function readCheckedFile(path: string, label: Label, what: string): Promise<Buffer> {
  const fd = await openDescriptor(path, 'r');
  try {
    const { size } = fstatSync(fd);
    if (size !== label.size) throw sizeMismatch(what, `${size} bytes`, label.size);
    const data = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await readDescriptor(fd, data, got, size - got, got);
      // The file shrank after its size was taken.
      if (bytesRead === 0) throw sizeMismatch(what, `${got} bytes`, label.size);
      got += bytesRead;
    }
    checkDigest(digestOf(data), label, what);
    return data;
  } finally {
    closeSync(fd);
  }
}

/** Size and sha256 of everything in `handle` from offset 0 to its end; `sizeHint` only sizes the buffers. */
async function digestHandle(handle: FileHandle, sizeHint: number, onBytes?: (bytes: number) => void): Promise<Digest> {
  const hash = createHash('sha256');
  const chunk = Math.min(READ_CHUNK_BYTES, Math.max(sizeHint, 4096));
  let spare = Buffer.allocUnsafe(chunk);
  let size = 0;
  let reading = handle.read(Buffer.allocUnsafe(chunk), 0, chunk, 0);
  for (;;) {
    const { bytesRead, buffer } = await reading;
    if (bytesRead === 0) return { size, sha256: hash.digest('hex') };
    size += bytesRead;
    // The next read fills the spare buffer while this one is hashed.
    reading = handle.read(spare, 0, chunk, size);
    hash.update(buffer.subarray(0, bytesRead));
    onBytes?.(bytesRead);
    spare = buffer;
  }
}

/** Throws `size_mismatch` or `digest_mismatch` unless `digest` matches `label`. Size is checked first. */
export function checkDigest(digest: Digest, label: Label, what: string): void {
  if (digest.size !== label.size) throw sizeMismatch(what, `${digest.size} bytes`, label.size);
  if (digest.sha256 !== label.sha256) throw digestMismatch(what, digest.sha256, label.sha256);
}

/** How a parcel is named in messages: `parcel <sha256> (<name>)`. */
export function describeParcel(label: Label): string {
  return `parcel ${label.sha256} (${label.name})`;
}
