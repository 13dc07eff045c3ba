/**
 * The parcel store seam: content-addressed storage of parcel data, shared by every bindle.
 * The HTTP layer and the indexer talk to this interface only; implementations (the on-disk
 * FileParcelStore, the S3ParcelStore) all pass test/contract/parcel-store-contract.ts. The
 * argument checks every implementation makes live here too.
 */
import type { Readable } from 'node:stream';

import { BindleError } from '../../core/errors/bindle-error.js';
import { isSha256Hex } from '../../core/ids/bindle-id.js';

/** What the store knows about a stored parcel. */
export interface ParcelStat {
  /** Size of the stored data in bytes. */
  size: number;
}

/** A stored parcel as a listing shows it. */
export interface StoredParcel {
  sha256: string;
  size: number;
  /** When the parcel's data was stored (Unix ms; the file's mtime, the object's LastModified). */
  storedAt: number;
}

/** What `ParcelStore.remove` did. */
export type RemoveOutcome = 'removed' | 'kept' | 'absent';

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
 *
 * A parcel is reported absent (has false, stat undefined, listed by missing, `not_found`,
 * 'absent', left out of a list) only when the store reached its storage and found it not
 * there. Storage gone from under an open store (a bucket or directory deleted, a volume
 * unmounted) makes every method reject with `unavailable` instead, so that a reader is never
 * told that stored parcels do not exist and readiness fails; the store works again, without
 * being reopened, once its storage is back.
 */
export interface ParcelStore {
  /** True iff the parcel's complete data is stored. */
  has(sha256: string): Promise<boolean>;

  /** The stored parcel's size, or undefined when it is not stored. */
  stat(sha256: string): Promise<ParcelStat | undefined>;

  /**
   * The digests among `digests` whose parcels are not stored (duplicates allowed). One batched
   * look-up, not a `has()` per digest: implementations whose every request is a network round
   * trip answer many digests per request.
   */
  missing(digests: readonly string[]): Promise<Set<string>>;

  /**
   * The stored sizes of those among `digests` whose parcels are stored (duplicates allowed):
   * `missing`'s look-up, answering with what it finds (the invoice create compares them with the
   * labels' sizes). A digest not stored is left out. Implementations answer `missing` as the
   * complement of this (missingFrom), so the two never disagree.
   */
  storedSizes(digests: readonly string[]): Promise<Map<string, number>>;

  /**
   * Opens the data (or a byte range of it) as a stream. Errors: `not_found` if the parcel is
   * not stored; `range_not_satisfiable` when `range` is not integral, `start > end`, or
   * `start >= size` (so every range of an empty parcel). An `end` past the last byte is
   * clamped to it, as HTTP does; callers that need the exact end use `stat()`.
   */
  openRead(sha256: string, range?: ByteRange): Promise<Readable>;

  /**
   * Streams `data` in while hashing; verifies size then sha256; makes it visible atomically.
   * Errors: `already_exists` (409) if the parcel exists before or at commit time (a stored
   * parcel of more than REFUSE_UNREAD_ABOVE_BYTES is refused before any of `data` is read; a
   * smaller one may be read first, and is refused as stored even when its data is wrong);
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

  /** Lists the stored parcels with their size and store time (garbage collection, fsck). */
  entries(): AsyncIterable<StoredParcel>;

  /**
   * Removes a stored parcel without racing the readers of the invoice index (garbage
   * collection, fsck repair). First the parcel is hidden — from then on has/stat/missing/
   * openRead/list answer as if it were absent, and a put may store it again — then `confirm`
   * is awaited (the caller re-checks that nothing needs the parcel). true: the hidden data is
   * removed ('removed'). false or a throw: the data is made visible again ('kept'; a throw is
   * rethrown), unless a put stored the parcel meanwhile, whose copy then stays. 'absent' when
   * the parcel was not stored (confirm is not called). Hidden data a killed process left is
   * removed by the staging sweep, by age.
   */
  remove(sha256: string, confirm: () => Promise<boolean>): Promise<RemoveOutcome>;

  /** Releases the store. Puts already under way finish; later calls reject with `unavailable`. */
  close(): Promise<void>;
}

/**
 * Largest parcel a put may read before it finds the parcel stored (already_exists). Above it a
 * re-upload is refused without taking its data; up to it a store whose every check is a network
 * round trip may let the write itself answer (S3's conditional PutObject), one request per new
 * parcel instead of a check and a write.
 */
export const REFUSE_UNREAD_ABOVE_BYTES = 1 << 20;

/**
 * Uploads in progress (file-store temp files, S3 multipart uploads) untouched for longer than
 * this are taken for leftovers of a killed process and removed, by default.
 */
export const DEFAULT_STAGING_MAX_AGE_MS = 60 * 60 * 1000;
/** How often a store looks for such leftovers while it is open, by default. */
export const DEFAULT_STAGING_SWEEP_MS = 15 * 60 * 1000;

/** Options every store takes for removing abandoned uploads (by age, never by process). */
export interface StagingOptions {
  /** Age (ms since last written) after which an upload in progress counts as abandoned. */
  stagingMaxAgeMs?: number;
  /** Interval (ms) of the background sweep; 0 sweeps only when the store opens. */
  stagingSweepMs?: number;
  /**
   * Told why a background sweep failed (the next one tries again); without it the failure goes
   * unreported. Removing abandoned uploads at open fails the open instead (a store may leave
   * the rest of its first sweep, what no operation needs done, to run in the background).
   */
  onSweepError?: (err: unknown) => void;
}

/** The numeric staging options, validated, with their defaults. */
export type StagingSettings = Required<Pick<StagingOptions, 'stagingMaxAgeMs' | 'stagingSweepMs'>>;

/**
 * The part of `remove` every store shares: runs `confirm` while the data is hidden, then
 * `purge`s it (confirmed) or `restore`s it (not confirmed, or confirm threw: rethrown after).
 * `restore` makes the hidden data visible unless a put stored the parcel meanwhile, and
 * removes the hidden copy either way.
 */
export async function confirmRemoval(
  confirm: () => Promise<boolean>,
  purge: () => Promise<void>,
  restore: () => Promise<void>,
): Promise<RemoveOutcome> {
  let confirmed: boolean;
  try {
    confirmed = await confirm();
  } catch (err) {
    await restore();
    throw err;
  }
  if (!confirmed) {
    await restore();
    return 'kept';
  }
  await purge();
  return 'removed';
}

/** Rejects a malformed digest with bad_request (the first check of every ParcelStore method). */
export function assertDigest(sha256: string): void {
  if (typeof sha256 !== 'string' || !isSha256Hex(sha256)) {
    throw new BindleError('bad_request', `invalid parcel sha256 ${JSON.stringify(sha256)}: expected 64 lowercase hex digits`);
  }
}

/** `missing`'s answer from `storedSizes`' (see ParcelStore.storedSizes): the digests it left out. */
export function missingFrom(digests: readonly string[], sizes: ReadonlyMap<string, number>): Set<string> {
  return new Set(digests.filter((sha256) => !sizes.has(sha256)));
}

/** Rejects received data whose sha256 `digest` is not the declared `sha256` with digest_mismatch. */
export function assertDigestMatches(sha256: string, digest: string): void {
  if (digest !== sha256) {
    throw new BindleError('digest_mismatch', `parcel data has sha256 ${digest}, but ${sha256} was declared`);
  }
}

/** Rejects a put's declared size unless it is a non-negative safe integer. */
export function assertExpectedSize(expectedSize: number): void {
  if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
    throw new BindleError('bad_request', `invalid parcel size ${String(expectedSize)}: expected a non-negative integer`);
  }
}

/** The error of a put whose parcel is already stored. */
export function alreadyExists(sha256: string): BindleError {
  return new BindleError('already_exists', `parcel ${sha256} already exists`);
}

/** Rejects a range that no parcel can satisfy (not integral, negative, start > end). */
export function assertRangeShape(sha256: string, range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end) {
    throw rangeNotSatisfiable(sha256, range);
  }
}

export function rangeNotSatisfiable(sha256: string, range: ByteRange, size?: number): BindleError {
  const of = size === undefined ? '' : ` of ${size} bytes`;
  return new BindleError('range_not_satisfiable', `byte range ${range.start}-${range.end} is not satisfiable for parcel ${sha256}${of}`);
}

/** Validates a staging option (a non-negative whole number of ms) or returns its default. */
function stagingOption(name: keyof StagingSettings, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BindleError('invalid_config', `${name} must be a non-negative whole number of milliseconds, not ${String(value)}`);
  }
  return value;
}

/** The staging options, validated (invalid_config), with their defaults filled in. */
export function stagingSettings(options: StagingOptions): StagingSettings {
  return {
    stagingMaxAgeMs: stagingOption('stagingMaxAgeMs', options.stagingMaxAgeMs, DEFAULT_STAGING_MAX_AGE_MS),
    stagingSweepMs: stagingOption('stagingSweepMs', options.stagingSweepMs, DEFAULT_STAGING_SWEEP_MS),
  };
}

/**
 * One store's sweep (removing what killed uploads left, by age), run the way every store must run
 * it; a store keeps one and calls it from `sweep()`, `open` and `close`.
 * - A sweep asked for while one is under way (which may have looked before the caller's change)
 *   gets the next one, which starts when that one ends and which every caller meanwhile shares.
 * - Background sweeps (`start`) report a failure to `onError` (none after close) and are retried
 *   by the next one.
 * - `close` stops: the sweep under way is told to stop (its signal aborts) and is awaited, a
 *   queued one never starts, and a sweep stopped or refused that way rejects with `unavailable`.
 */
export class Sweeper {
  readonly #sweepOnce: (signal: AbortSignal) => Promise<void>;
  readonly #closedMessage: string;
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** `sweepOnce` is one whole sweep, which soon after `signal` aborts stops by throwing (`signal.throwIfAborted()`). */
  constructor(sweepOnce: (signal: AbortSignal) => Promise<void>, closedMessage: string) {
    this.#sweepOnce = sweepOnce;
    this.#closedMessage = closedMessage;
  }

  /** A whole sweep that starts now, or after the one under way. */
  sweep(): Promise<void> {
    return this.#run(this.#sweepOnce);
  }

  /**
   * Runs `first` (a part of a sweep the opening store left to the background) now, when given,
   * then a whole sweep every `sweepMs` (never when 0), without keeping the process alive.
   */
  start(sweepMs: number, onError: ((err: unknown) => void) | undefined, first?: (signal: AbortSignal) => Promise<void>): void {
    const background = (sweeping: Promise<void>): void => {
      sweeping.catch((err: unknown) => {
        if (!this.#stop.signal.aborted) onError?.(err);
      });
    };
    if (first !== undefined) background(this.#run(first));
    if (sweepMs === 0) return;
    this.#timer = setInterval(() => background(this.sweep()), sweepMs);
    this.#timer.unref();
  }

  /** Stops sweeping (see the class) and waits for the sweep under way to end. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#stop.abort();
    await Promise.allSettled([this.#running, this.#next]);
  }

  #run(once: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.#stop.signal.aborted) return Promise.reject(this.#closedError());
    if (this.#running !== undefined) {
      const startNext = (): Promise<void> => {
        this.#next = undefined;
        return this.sweep();
      };
      this.#next ??= this.#running.then(startNext, startNext);
      return this.#next;
    }
    const running = once(this.#stop.signal).catch((err: unknown) => {
      throw this.#stop.signal.aborted ? this.#closedError(err) : err;
    });
    this.#running = running.finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #closedError(cause?: unknown): BindleError {
    return new BindleError('unavailable', this.#closedMessage, cause === undefined ? undefined : { cause });
  }
}
