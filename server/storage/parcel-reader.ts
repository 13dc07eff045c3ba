/**
 * ParcelReader: the read side in front of any ParcelStore, for serving parcels fast. A parcel's
 * bytes never change once stored (its name is their sha256), so what a read learns about a
 * parcel stays true in every replica: its size is remembered (no `stat` per request), and small
 * parcels are kept in memory (one read when first looked up or served, then none: `sizeFor` reads
 * a small parcel whole rather than asking its size and reading it later). Both are bounded, least
 * recently used first out (approximately: a ClockCache). The one thing that can change is
 * whether a parcel is stored at all (a removal by another process: garbage collection, repair),
 * so a remembered parcel is looked up in the store again once its entry is older than
 * `revalidateMs`, and `forget()` drops it at once in this process. Only bytes whose sha256 matches the parcel's name are kept.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

import { readAtMost, type BoundedRead } from '../../core/bounded-read.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { ClockCache } from './clock-cache.js';
import type { ByteRange, ParcelStore } from './parcel-store.js';

export interface ParcelReaderOptions {
  /** Parcels of at most this many bytes are kept in memory (default 64 KiB; 0 keeps none). */
  smallMaxBytes?: number;
  /** Total bytes of the parcels kept in memory (default 16 MiB). */
  cacheBytes?: number;
  /** Parcels remembered (size, and bytes for small ones) at most (default 10,000). */
  maxEntries?: number;
  /** Age (ms) after which a remembered parcel is looked up in the store again (default 5 s). */
  revalidateMs?: number;
  /** Clock in ms; injectable for tests. */
  now?: () => number;
}

export const DEFAULT_SMALL_MAX_BYTES = 64 * 1024;
export const DEFAULT_CACHE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_ENTRIES = 10_000;
export const DEFAULT_REVALIDATE_MS = 5000;

/** What the reader remembers of one stored parcel. */
interface Entry {
  size: number;
  /** The whole parcel, verified, when it is small and has been read. */
  bytes: Buffer | undefined;
  /** When the store last confirmed the parcel (ms, `now()`). */
  checkedAt: number;
}

/** A parcel's bytes (a small parcel, from memory) or a stream of them (a big one). */
export type ParcelBody = Buffer | Readable;

/** Whether `bytes` are the parcel named `sha256`. */
function isParcel(sha256: string, bytes: Buffer): boolean {
  return createHash('sha256').update(bytes).digest('hex') === sha256;
}

export class ParcelReader {
  private readonly store: ParcelStore;
  private readonly smallMaxBytes: number;
  private readonly cacheBytes: number;
  private readonly revalidateMs: number;
  private readonly now: () => number;
  /**
   * Weighed by the bytes kept; over the byte budget an entry loses its bytes first and its size
   * stays remembered.
   */
  private readonly entries: ClockCache<string, Entry>;

  constructor(store: ParcelStore, options: ParcelReaderOptions = {}) {
    this.store = store;
    this.smallMaxBytes = options.smallMaxBytes ?? DEFAULT_SMALL_MAX_BYTES;
    this.cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.revalidateMs = options.revalidateMs ?? DEFAULT_REVALIDATE_MS;
    this.now = options.now ?? Date.now;
    this.entries = new ClockCache<string, Entry>({
      maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
      maxWeight: this.cacheBytes,
      weigh: (entry) => entry.bytes?.length ?? 0,
      shed: (entry) => (entry.bytes === undefined ? entry : { ...entry, bytes: undefined }),
    });
  }

  /** The stored parcel's size, or undefined when it is not stored (never remembered). */
  async size(sha256: string): Promise<number | undefined> {
    const entry = this.fresh(sha256);
    if (entry !== undefined) return entry.size;
    const stat = await this.store.stat(sha256);
    if (stat === undefined) {
      this.forget(sha256);
      return undefined;
    }
    const known = this.entries.peek(sha256);
    this.remember(sha256, { size: stat.size, bytes: known?.size === stat.size ? known.bytes : undefined, checkedAt: this.now() });
    return stat.size;
  }

  /**
   * The stored parcel's size as `size()`, for a parcel whose label says it is `labelSize` bytes:
   * a small one whose bytes are not kept is read whole instead of looked up, so one request to the store
   * learns both (on S3 a GET instead of a HEAD now and a GET when it is served), and its bytes are
   * kept when they are the parcel's. A read that finds more than a small parcel's bytes (a label
   * that understates the size) stops there and asks `size()`.
   */
  async sizeFor(sha256: string, labelSize: number): Promise<number | undefined> {
    const entry = this.fresh(sha256);
    if (entry !== undefined) return entry.size;
    // Bytes already kept need only the look-up that confirms the parcel is still stored.
    if (labelSize > this.smallMaxBytes || this.entries.peek(sha256)?.bytes !== undefined) return this.size(sha256);
    let read: BoundedRead;
    try {
      read = await readAtMost(await this.store.openRead(sha256), this.smallMaxBytes);
    } catch (err) {
      if (!isBindleError(err) || err.code !== 'not_found') throw err;
      this.forget(sha256);
      return undefined;
    }
    if (read.over) return this.size(sha256);
    const bytes = read.bytes;
    this.remember(sha256, { size: bytes.length, bytes: isParcel(sha256, bytes) ? bytes : undefined, checkedAt: this.now() });
    return bytes.length;
  }

  /**
   * The stored parcel's size when it was confirmed recently enough to need no look-up in the
   * store (then marked recently used), else undefined: the caller then asks `size()`. Lets a
   * request for a remembered parcel go without a promise.
   */
  knownSize(sha256: string): number | undefined {
    return this.fresh(sha256)?.size;
  }

  /**
   * The parcel's bytes (or those of `range`, checked against its size) when they are in memory,
   * else undefined: the caller then asks `read()`.
   */
  cachedBytes(sha256: string, range?: ByteRange): Buffer | undefined {
    const bytes = this.entries.peek(sha256)?.bytes;
    if (bytes === undefined || range === undefined) return bytes;
    return bytes.subarray(range.start, Math.min(range.end, bytes.length - 1) + 1);
  }

  /**
   * The parcel's bytes, or those of `range` (already checked against `size`, ends inclusive), for
   * a parcel of `size` bytes as `size()` gave it: a Buffer for a small parcel, else a stream
   * from the store. Errors as ParcelStore.openRead.
   */
  async read(sha256: string, size: number, range?: ByteRange): Promise<ParcelBody> {
    if (size > this.smallMaxBytes) return this.store.openRead(sha256, range);
    const bytes = this.entries.peek(sha256)?.bytes ?? (await this.load(sha256, size));
    return range === undefined ? bytes : bytes.subarray(range.start, Math.min(range.end, bytes.length - 1) + 1);
  }

  /** Drops what is remembered of the parcel (call it when this process removes one). */
  forget(sha256: string): void {
    this.entries.delete(sha256);
  }

  /** How many parcels are remembered and how many bytes are kept (for tests and metrics). */
  usage(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.entries.weight };
  }

  /**
   * The entry when it is recent enough to trust without asking the store; marks it recently used
   * (a stale one too: the caller's look-up then replaces or forgets it).
   */
  private fresh(sha256: string): Entry | undefined {
    const entry = this.entries.get(sha256);
    return entry === undefined || this.now() - entry.checkedAt >= this.revalidateMs ? undefined : entry;
  }

  /** Reads a small parcel whole; keeps it when its bytes are the parcel's (sha256 and size). */
  private async load(sha256: string, size: number): Promise<Buffer> {
    const read = await readAtMost(await this.store.openRead(sha256), size);
    if (read.over) throw new BindleError('internal', `parcel ${sha256}: the store holds more than the ${size} bytes it said`);
    const bytes = read.bytes;
    if (bytes.length === size && isParcel(sha256, bytes)) {
      this.remember(sha256, { size, bytes, checkedAt: this.entries.peek(sha256)?.checkedAt ?? this.now() });
    }
    return bytes;
  }

  /** Remembers the entry; bytes too heavy for the whole budget are not kept, its size is. */
  private remember(sha256: string, entry: Entry): void {
    const bytes = entry.bytes;
    this.entries.set(sha256, bytes !== undefined && bytes.length > this.cacheBytes ? { ...entry, bytes: undefined } : entry);
  }
}
