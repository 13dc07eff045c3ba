/**
 * The parcel store seam: content-addressed storage of parcel data, shared by every bindle.
 * The HTTP layer and the indexer talk to this interface only; implementations (the on-disk
 * FileParcelStore, ...) all pass test/contract/parcel-store-contract.ts.
 */
import type { Readable } from 'node:stream';

/** What the store knows about a stored parcel. */
export interface ParcelStat {
  /** Size of the stored data in bytes. */
  size: number;
}

/** A byte range of a parcel; both ends inclusive, as in an HTTP `Range` header. */
export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/** What a successful put stored. */
export interface PutResult {
  sha256: string;
  size: number;
}

/**
 * Content-addressed parcel storage. A parcel exists iff its complete, verified data is stored.
 *
 * Every method first checks that `sha256` is 64 lowercase hex digits and rejects anything else
 * with `bad_request` before touching storage. After `close()` every method rejects with
 * `unavailable`.
 */
export interface ParcelStore {
  /** True iff the parcel's complete data is stored. */
  has(sha256: string): Promise<boolean>;

  /** The stored parcel's size, or undefined when it is not stored. */
  stat(sha256: string): Promise<ParcelStat | undefined>;

  /**
   * Opens the data (or a byte range of it) as a stream. Errors: `not_found` if the parcel is
   * not stored; `range_not_satisfiable` when `range` is not integral, `start > end`, or
   * `start >= size` (so every range of an empty parcel). An `end` past the last byte is
   * clamped to it, as HTTP does; callers that need the exact end use `stat()`.
   */
  openRead(sha256: string, range?: ByteRange): Promise<Readable>;

  /**
   * Streams `data` in while hashing; verifies size then sha256; makes it visible atomically.
   * Errors: `already_exists` (409) if the parcel exists before or at commit time;
   * `size_mismatch` when more or fewer than `expectedSize` bytes arrive (reading stops as soon
   * as the data exceeds it); `digest_mismatch`; `bad_request` for a malformed sha256 or an
   * `expectedSize` that is not a non-negative safe integer; a stream error (client aborted) is
   * rethrown as is, and a stream that closes before its end rejects with a premature-close error.
   * On ANY failure nothing is left behind, so a retry succeeds.
   *
   * The store never destroys `data`: when it stops early it removes its listeners and leaves
   * the stream paused; the caller decides whether to drain or destroy it.
   */
  put(sha256: string, expectedSize: number, data: Readable): Promise<PutResult>;

  /** Lists the digests of the stored parcels (for tests and tooling); removes nothing. */
  list(): AsyncIterable<string>;

  /** Releases the store. Puts already under way finish; later calls reject with `unavailable`. */
  close(): Promise<void>;
}
