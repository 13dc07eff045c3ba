/**
 * Checking parcel bytes against their label: a pass-through stream that counts and hashes what
 * flows through it and fails with `size_mismatch` or `digest_mismatch` when it is not what the
 * label promises, and the same check for a file on disk.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import type { Label } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';

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

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    callback(err === null || this.#mapError === undefined || err instanceof BindleError ? err : this.#mapError(err));
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

/** Size and sha256 of a file, streamed. */
export async function digestFile(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { size, sha256: hash.digest('hex') };
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
