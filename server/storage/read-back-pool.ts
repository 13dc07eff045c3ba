/**
 * ReadBackPool: the buffers the S3 store's spooled parts are read back into (./part-spool.ts),
 * lent while their parts are sent, given back once the service has answered, and kept free for
 * the next read-backs and for new part buffers of any upload; what they hold together, lent or
 * free, stays within the pool's cap (the read-back cap). A part waits for a buffer here first
 * come, first served, and only parts being sent hold one, so the wait is for the service, never
 * for another upload's client. Free buffers are let go once idle.
 */
import { IdleWatch } from './idle-watch.js';

/** A buffer lent to read a spooled part back into, and how to give it back. */
export interface ReadBackLease {
  readonly buffer: Buffer;
  readonly release: () => void;
}

/** The read-back buffers of one PartSpool: lent, given back, kept free within `cap`. */
export class ReadBackPool {
  /** Bytes of buffers lent out. */
  #lent = 0;
  /** Buffers not lent out, kept for the next read-backs (and parts, `takeFree`) until they are idle. */
  #free: Buffer[] = [];
  #allocated = 0;
  /** Lets the free buffers go once none was lent, taken or kept for a whole IDLE_RELEASE_MS. */
  readonly #idle = new IdleWatch(() => {
    this.#free = [];
  });
  /** Read-backs waiting for a buffer, first come first served. */
  readonly #queue: { bytes: number; bufferBytes: number; grant: (lease: ReadBackLease) => void }[] = [];

  constructor(
    /** What the buffers may hold together, lent out or kept free. */
    readonly cap: number,
  ) {
    if (!(Number.isSafeInteger(cap) && cap > 0)) throw new RangeError(`a part spool's read-back cap must be a positive integer, got ${cap}`);
  }

  /** Bytes of buffers lent out now. */
  get lent(): number {
    return this.#lent;
  }

  /** Bytes of buffers kept free for the next read-backs. */
  get free(): number {
    return this.#free.reduce((n, buffer) => n + buffer.length, 0);
  }

  /** Buffers allocated so far. */
  get allocated(): number {
    return this.#allocated;
  }

  /** Read-backs waiting for a buffer. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Bytes of buffers, lent out or free: what the cap bounds. */
  #held(): number {
    return this.#lent + this.free;
  }

  /**
   * Lends a buffer of at least `bytes` to read a spooled part back into: a free one if there is
   * one, else a new one of `bufferBytes` (at least `bytes`; the size of the caller's parts, so that
   * it serves the next read-backs too) while the cap allows it, else, once it does, after every
   * read-back that asked before (a buffer larger than the whole cap is lent alone). The caller
   * holds it from reading the part back until the service has answered for it, then gives it back
   * with `release` (once; later calls do nothing), and must not use it after that. Free buffers
   * are let go once none was lent or given back for a whole IDLE_RELEASE_MS.
   */
  lend(bytes: number, bufferBytes: number = bytes): Promise<ReadBackLease> {
    return new Promise((resolve) => {
      this.#queue.push({ bytes, bufferBytes: Math.max(bytes, bufferBytes), grant: resolve });
      this.#lendWaiting();
    });
  }

  #lendWaiting(): void {
    for (let next = this.#queue[0]; next !== undefined; next = this.#queue[0]) {
      const buffer = this.#takeFreeWhere((free) => free.length >= next.bytes) ?? this.#newBuffer(next.bufferBytes);
      if (buffer === undefined) return;
      this.#queue.shift();
      this.#lent += buffer.length;
      next.grant({ buffer, release: this.#returner(buffer) });
    }
  }

  /**
   * A free buffer of exactly `bytes` for a part kept in memory, which its reservation under the
   * spool's memory cap then covers; undefined if there is none.
   */
  takeFree(bytes: number): Buffer | undefined {
    return this.#takeFreeWhere((buffer) => buffer.length === bytes);
  }

  /**
   * Keeps a part buffer an upload let go (nothing refers to it any more) free for the next
   * read-backs and parts, if the cap has room for it; else it is dropped.
   */
  keepFree(buffer: Buffer): void {
    if (this.#held() + buffer.length <= this.cap) {
      this.#free.push(buffer);
      this.#idle.touch();
      this.#idle.arm();
    }
    this.#lendWaiting();
  }

  /** The first free buffer `fits`, taken off the free list. */
  #takeFreeWhere(fits: (buffer: Buffer) => boolean): Buffer | undefined {
    const at = this.#free.findIndex(fits);
    if (at < 0) return undefined;
    this.#idle.touch();
    return this.#free.splice(at, 1)[0];
  }

  /** A new buffer, if the cap allows it once free buffers are let go (or nothing else is lent). */
  #newBuffer(bytes: number): Buffer | undefined {
    while (this.#held() + bytes > this.cap && this.#free.pop() !== undefined);
    if (this.#lent > 0 && this.#lent + bytes > this.cap) return undefined;
    this.#allocated++;
    return Buffer.allocUnsafe(bytes);
  }

  /** Gives a lent buffer back: kept free if the cap has room for it (else dropped). */
  #returner(buffer: Buffer): () => void {
    let returned = false;
    return () => {
      if (returned) return;
      returned = true;
      this.#lent -= buffer.length;
      this.keepFree(buffer);
    };
  }
}
