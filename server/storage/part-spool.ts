/**
 * PartSpool: where the S3 store's multipart uploads keep the parts they are filling. A part is
 * kept in memory while what the parts in memory hold together stays within the spool's cap; once
 * the cap refuses a part more, its bytes so far are written to an anonymous file on local disk,
 * where the rest of it is appended as it arrives, to be read back once complete and sent. So
 * however many uploads stop part-way (S3 parts are at least 5 MiB and cannot shrink as the file
 * store's write batches do), what their unfinished parts hold in memory stays within the cap; the
 * rest waits on disk, as nginx keeps request bodies past its buffer. A part begins in memory only
 * while the cap could take its whole size; it reserves the bytes it holds while they are few
 * (under PART_WHOLE_FROM_BYTES), then its whole size, so clients that send a little each and wait
 * cannot take the cap from the uploads that are sending.
 *
 * A part in memory keeps its reservation while it is sent, until the service has answered, and a
 * stored part's buffer kept for the upload's next part keeps it too (PartWriter): the cap counts
 * every part buffer an upload holds, not only those being filled. A spooled part, once complete,
 * is read back into a buffer lent by the spool's ReadBackPool (./read-back-pool.ts) under a second
 * allowance, the read-back cap, held until the service has answered for it, then lent again:
 * however many parts are read back, what their buffers hold stays within the read-back cap, and a
 * busy spool allocates few of them instead of one per part for the collector to free later.
 *
 * A parcel the S3 store stores with one PutObject (up to 8 MiB) is gathered under the same rules
 * (GatheredPart).
 *
 * A spool file is unlinked as soon as it is created, so it is nobody else's to see and nothing
 * of it is left behind, even by a killed process: it is gone once its descriptor is closed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadBackPool } from './read-back-pool.js';

/** The directory, under a server's data directory, where its S3 store spools parts. */
export const PART_SPOOL_DIRECTORY = 'part-spool';

/** What parts being filled may hold in memory together by default, 128 MiB (sixteen 8 MiB parts). */
export const PART_MEMORY_CAP_BYTES = 128 << 20;

/**
 * A part holding fewer bytes than this, 1 MiB (one upload batch), reserves just those bytes; from
 * it on, its whole size. So clients that send a little of a part and wait take little of the cap,
 * while parts being filled reserve their size early: uploads sending at once keep their parts in
 * memory first come, first served, instead of all growing until the cap is full and nearly every
 * one of them is spilled (24 uploads of 7 MiB at once: 22 of 24 parts spilled, 9 with this rule).
 */
export const PART_WHOLE_FROM_BYTES = 1 << 20;

/**
 * What the buffers spooled parts are read back into may hold together, lent out while their parts
 * are sent or kept free for the next ones, given the spool's memory cap: half as much again (at
 * least a byte: with no memory for parts, one part is read back at a time).
 */
export function readBackCapFor(cap: number): number {
  return Math.max(1, Math.floor(cap / 2));
}

/** One part's bytes on disk: appended as they arrive, then read back whole. */
export class SpooledPart {
  /** Bytes written so far. */
  size = 0;
  private closed = false;

  constructor(
    private readonly file: FileHandle,
    private readonly onClose: () => void,
  ) {}

  /** Appends `chunk`. */
  async append(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length; ) {
      const { bytesWritten } = await this.file.write(chunk, offset, chunk.length - offset, this.size);
      offset += bytesWritten;
      this.size += bytesWritten;
    }
  }

  /** Reads the part's bytes into `into` (at least `size` long) and returns that many of it. */
  async readInto(into: Buffer): Promise<Buffer> {
    for (let offset = 0; offset < this.size; ) {
      const { bytesRead } = await this.file.read(into, offset, this.size - offset, offset);
      if (bytesRead === 0) throw new Error(`spooled part ended after ${offset} of ${this.size} bytes`);
      offset += bytesRead;
    }
    return into.subarray(0, this.size);
  }

  /** Closes the file, which takes it away; once only, later calls do nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    await this.file.close();
  }
}

/**
 * Where one part is being gathered: in memory, holding a reservation under the spool's cap for
 * what it keeps there (`file` undefined), or in a spool file once the cap refused it more. A part
 * starts in memory with nothing reserved; `hold` reserves for what it takes in, `spill` moves it
 * to a file for good, and `end` gives back the reservation or closes the file; once only.
 */
export class PartPlace {
  #reserved = 0;
  #file: SpooledPart | undefined;
  #ended = false;

  constructor(private readonly spool: PartSpool) {}

  /** The part's spool file; undefined while it is kept in memory. */
  get file(): SpooledPart | undefined {
    return this.#file;
  }

  /** Bytes reserved for the part in memory. */
  get reserved(): number {
    return this.#reserved;
  }

  /**
   * Makes the part's reservation cover holding `bytes` of its `size` in memory: those bytes while
   * they are fewer than the spool's `wholeFrom`, else all of `size` (it never shrinks). False,
   * changing nothing, if the cap does not allow it, or, for a part that has reserved nothing yet,
   * if the cap could not take its whole `size` now (then the caller spills the part: under a full
   * cap new parts go to disk from their first bytes, not after growing in memory). Only while the
   * part is in memory.
   */
  hold(bytes: number, size: number): boolean {
    if (this.#file !== undefined || this.#ended) throw new Error('a spooled or ended part takes no memory');
    const needed = bytes < this.spool.wholeFrom ? bytes : Math.max(bytes, size);
    if (needed <= this.#reserved) return true;
    // A part begins in memory only while the cap could still take its whole size.
    if (this.#reserved === 0 && !this.spool.hasRoom(size)) return false;
    if (!this.spool.reserve(needed - this.#reserved)) return false;
    this.#reserved = needed;
    return true;
  }

  /**
   * Gives back all of the reservation but `bytes`, the bytes the part now holds, if they are
   * fewer than the spool's `wholeFrom` (a part holding few bytes reserves just them, see `hold`);
   * otherwise changes nothing. Only while the part is in memory.
   */
  shrink(bytes: number): void {
    if (this.#file !== undefined || this.#ended) throw new Error('a spooled or ended part takes no memory');
    if (bytes >= this.spool.wholeFrom || bytes >= this.#reserved) return;
    this.spool.release(this.#reserved - bytes);
    this.#reserved = bytes;
  }

  /**
   * Moves the part to a new spool file: writes `held` (the bytes it kept in memory, then any more,
   * in order) there, then gives its reservation back. Rejects if the file cannot be made or
   * written; `end` still closes it.
   */
  async spill(held: readonly Buffer[]): Promise<SpooledPart> {
    if (this.#file !== undefined || this.#ended) throw new Error('a part spills once, before it ends');
    const file = await this.spool.create();
    if (this.#ended) {
      await file.close();
      throw new Error('the part ended while its spool file was made');
    }
    this.#file = file;
    for (const chunk of held) await file.append(chunk);
    this.spool.release(this.#reserved);
    this.#reserved = 0;
    return file;
  }

  /** The part is done with (sent, or given up): its reservation or its spool file goes. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.spool.release(this.#reserved);
    this.#reserved = 0;
    this.#file?.close().catch(() => undefined);
  }
}

/**
 * The memory allowance of parts in memory (being filled, being sent, kept as spares) and the
 * directory of the parts spooled past it; with them, the pool of buffers spooled parts are read
 * back into (`buffers`).
 */
export class PartSpool {
  #held = 0;
  #files = 0;
  #spooled = 0;
  #prepared = false;
  /** The buffers spooled parts are read back into, within the read-back cap. */
  readonly buffers: ReadBackPool;

  constructor(
    /** Where spool files are created (made when first needed); the system's temp directory by default. */
    readonly directory: string = join(tmpdir(), 'bindle-part-spool'),
    /** What parts in memory may hold together. */
    readonly cap: number = PART_MEMORY_CAP_BYTES,
    /** From how many bytes held a part reserves its whole size (see PartPlace.hold). */
    readonly wholeFrom: number = PART_WHOLE_FROM_BYTES,
    /**
     * What the buffers that spooled parts are read back into may hold together, lent out or kept
     * free; `readBackCapFor(cap)` by default (64 MiB, eight 8 MiB parts, with the default cap).
     */
    readBackCap: number = readBackCapFor(cap),
  ) {
    if (!(Number.isSafeInteger(cap) && cap >= 0)) throw new RangeError(`a part spool's memory cap must be a non-negative integer, got ${cap}`);
    if (!(Number.isSafeInteger(wholeFrom) && wholeFrom > 0)) throw new RangeError(`a part spool's wholeFrom must be a positive integer, got ${wholeFrom}`);
    this.buffers = new ReadBackPool(readBackCap);
  }

  /** Bytes reserved by parts in memory now. */
  get held(): number {
    return this.#held;
  }

  /** Spool files open now. */
  get files(): number {
    return this.#files;
  }

  /** Parts spooled so far. */
  get spooled(): number {
    return this.#spooled;
  }

  /** Whether `bytes` more would stay within the cap. */
  hasRoom(bytes: number): boolean {
    return this.#held + bytes <= this.cap;
  }

  /** Reserves `bytes` for a part kept in memory; false (nothing reserved) if that would go over the cap. */
  reserve(bytes: number): boolean {
    if (!this.hasRoom(bytes)) return false;
    this.#held += bytes;
    return true;
  }

  /** Gives back a reservation. */
  release(bytes: number): void {
    this.#held -= bytes;
  }

  /** A new part's place: in memory, nothing reserved yet (see PartPlace). */
  begin(): PartPlace {
    return new PartPlace(this);
  }

  /** A new, empty spool file, already unlinked. */
  async create(): Promise<SpooledPart> {
    if (!this.#prepared) {
      await mkdir(this.directory, { recursive: true, mode: 0o700 });
      this.#prepared = true;
    }
    const path = join(this.directory, `${randomBytes(12).toString('hex')}.part`);
    const file = await open(path, 'wx+', 0o600);
    try {
      await unlink(path);
    } catch (err) {
      await file.close();
      throw err;
    }
    this.#files++;
    this.#spooled++;
    return new SpooledPart(file, () => this.#files--);
  }
}

/**
 * The spool every S3 store in the process shares unless it is given one (in the system's temp
 * directory; the server gives its stores one under its data directory): one cap per process, as
 * processUploadBudget is one budget. Nothing is made on disk until a part is spooled.
 */
export const processPartSpool = new PartSpool();

/**
 * One part gathered whole as its bytes arrive, for a single PutObject: kept in memory (reserved as
 * PartPlace.hold says) while the spool's cap allows, else in a spool file. In memory, its chunks
 * are kept as received while they are few (under the spool's `wholeFrom`); from then on, when the
 * part reserves its whole size anyway, they are copied into one buffer of that size as they come
 * (a free one of the spool's, `takeFree`, or a new one), so that handing the bytes over needs no
 * second copy of the part beside its chunks. `whole` hands the bytes over as one buffer (a
 * spooled part read back under the spool's read-back cap, once there is room); what they hold
 * stays counted, under the cap or the read-back cap, until `close`, which the caller calls once
 * the service has answered for them, and which gives the part's buffer to the spool's free ones.
 */
export class GatheredPart {
  /** The chunks as received, while the part holds fewer than `wholeFrom` bytes in memory. */
  #chunks: Buffer[] = [];
  /** The part's buffer, once it holds `wholeFrom` bytes in memory: its bytes are copied there. */
  #buffer: Buffer | undefined;
  #place: PartPlace | undefined;
  /** Bytes taken so far, wherever they are kept. */
  #bytes = 0;
  #readBackRelease: (() => void) | undefined;
  #closed = false;

  constructor(
    private readonly spool: PartSpool,
    /** The part's size (what it reserves once it holds the spool's `wholeFrom`). */
    readonly size: number,
  ) {}

  /** Takes `chunk`'s bytes (it must not change afterwards); more than `size` bytes in all are refused. */
  async add(chunk: Buffer): Promise<void> {
    const bytes = this.#bytes + chunk.length;
    if (bytes > this.size) throw new RangeError(`a part of ${this.size} bytes was given ${bytes}`);
    this.#bytes = bytes;
    const place = (this.#place ??= this.spool.begin());
    const file = place.file;
    if (file !== undefined) {
      await file.append(chunk);
      return;
    }
    if (!place.hold(bytes, this.size)) {
      const held = this.#chunks;
      this.#chunks = [];
      await place.spill([...held, chunk]);
      return;
    }
    let buffer = this.#buffer;
    if (buffer === undefined) {
      // A part that arrives whole in one chunk is handed over as it is.
      if (bytes < this.spool.wholeFrom || chunk.length === this.size) {
        this.#chunks.push(chunk);
        return;
      }
      buffer = this.#buffer = this.spool.buffers.takeFree(this.size) ?? Buffer.allocUnsafe(this.size);
      let at = 0;
      for (const held of this.#chunks) at += held.copy(buffer, at);
      this.#chunks = [];
    }
    chunk.copy(buffer, bytes - chunk.length);
  }

  /**
   * The bytes taken, as one buffer; the part keeps no reference to them but the one `close`
   * gives to the spool's free buffers, and what they hold stays counted until `close`. Rejects,
   * holding nothing, if the part was closed meanwhile.
   */
  async whole(): Promise<Buffer> {
    const place = this.#place;
    const file = place?.file;
    if (file === undefined) {
      if (this.#buffer !== undefined) return this.#buffer.subarray(0, this.#bytes);
      const chunks = this.#chunks;
      this.#chunks = [];
      const [only] = chunks;
      return chunks.length === 1 && only !== undefined ? only : Buffer.concat(chunks);
    }
    const { buffer, release } = await this.spool.buffers.lend(file.size);
    if (this.#closed) {
      release();
      throw new Error('the gathered part was closed while it waited to be read back');
    }
    this.#readBackRelease = release;
    try {
      return await file.readInto(buffer);
    } finally {
      place?.end();
    }
  }

  /**
   * Gives up the bytes, the reservation or the read-back room, and the spool file; the part's
   * buffer, which nothing may use any more, goes to the spool's free buffers. Once only, later
   * calls do nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#bytes = 0;
    this.#place?.end();
    this.#readBackRelease?.();
    const buffer = this.#buffer;
    this.#buffer = undefined;
    if (buffer !== undefined) this.spool.buffers.keepFree(buffer);
  }
}
