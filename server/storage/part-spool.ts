/**
 * PartSpool: where the S3 store's multipart uploads keep the parts they are filling. A part is
 * kept in memory while the parts kept in memory together stay within the spool's cap; past it, a
 * new part is written to an anonymous file on local disk as its bytes arrive, and read back once
 * complete to be sent. So however many uploads stop part-way (S3 parts are at least 5 MiB and
 * cannot shrink as the file store's write batches do), what their unfinished parts hold in memory
 * stays within the cap; the rest waits on disk, as nginx keeps request bodies past its buffer.
 *
 * A parcel the S3 store stores with one PutObject (up to 8 MiB) is gathered under the same rule,
 * as one part of its size (GatheredPart).
 *
 * A spool file is unlinked as soon as it is created, so it is nobody else's to see and nothing
 * of it is left behind, even by a killed process: it is gone once its descriptor is closed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The directory, under a server's data directory, where its S3 store spools parts. */
export const PART_SPOOL_DIRECTORY = 'part-spool';

/** What parts being filled may hold in memory together by default, 128 MiB (sixteen 8 MiB parts). */
export const PART_MEMORY_CAP_BYTES = 128 << 20;

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

/** The memory allowance of parts being filled, and the directory of the parts spooled past it. */
export class PartSpool {
  #held = 0;
  #files = 0;
  #spooled = 0;
  #prepared = false;

  constructor(
    /** Where spool files are created (made when first needed); the system's temp directory by default. */
    readonly directory: string = join(tmpdir(), 'bindle-part-spool'),
    /** What parts in memory may hold together. */
    readonly cap: number = PART_MEMORY_CAP_BYTES,
  ) {
    if (!(Number.isSafeInteger(cap) && cap >= 0)) throw new RangeError(`a part spool's memory cap must be a non-negative integer, got ${cap}`);
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

  /** Reserves `bytes` for a part kept in memory; false (nothing reserved) if that would go over the cap. */
  reserve(bytes: number): boolean {
    if (this.#held + bytes > this.cap) return false;
    this.#held += bytes;
    return true;
  }

  /** Gives back a reservation. */
  release(bytes: number): void {
    this.#held -= bytes;
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
 * One part gathered whole as its bytes arrive, for a single PutObject: kept in memory (its size
 * reserved from its first bytes) while the spool's cap allows, else in a spool file. `whole`
 * hands the bytes over as one buffer; from then on, or once `close`d, it holds nothing.
 */
export class GatheredPart {
  #chunks: Buffer[] = [];
  #spooled: SpooledPart | undefined;
  #reserved = false;
  #started = false;

  constructor(
    private readonly spool: PartSpool,
    /** The part's size (what is reserved for it in memory). */
    readonly size: number,
  ) {}

  /** Takes `chunk`'s bytes (it must not change afterwards). */
  async add(chunk: Buffer): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#reserved = this.spool.reserve(this.size);
      if (!this.#reserved) this.#spooled = await this.spool.create();
    }
    if (this.#spooled !== undefined) await this.#spooled.append(chunk);
    else this.#chunks.push(chunk);
  }

  /** The bytes taken, as one buffer; the part holds nothing afterwards. */
  async whole(): Promise<Buffer> {
    try {
      if (this.#spooled !== undefined) return await this.#spooled.readInto(Buffer.allocUnsafe(this.#spooled.size));
      const [only] = this.#chunks;
      return this.#chunks.length === 1 && only !== undefined ? only : Buffer.concat(this.#chunks);
    } finally {
      this.close();
    }
  }

  /** Gives up the bytes, the reservation and the spool file; once only, later calls do nothing. */
  close(): void {
    this.#chunks = [];
    if (this.#reserved) this.spool.release(this.size);
    this.#reserved = false;
    const spooled = this.#spooled;
    this.#spooled = undefined;
    spooled?.close().catch(() => undefined);
  }
}
