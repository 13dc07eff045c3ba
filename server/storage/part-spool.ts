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

/**
 * Where one part is being gathered: in memory, its size reserved under the spool's cap (`file`
 * undefined), or in a spool file past it. `end` gives back the one or the other; once only.
 */
export class PartPlace {
  private ended = false;

  constructor(
    private readonly spool: PartSpool,
    private readonly bytes: number,
    /** The part's spool file; undefined while it is kept in memory. */
    readonly file: SpooledPart | undefined,
  ) {}

  /** The part is done with (sent, or given up): its reservation or its spool file goes. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.file === undefined) this.spool.release(this.bytes);
    else this.file.close().catch(() => undefined);
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

  /** Where a part of `bytes` is gathered: in memory if the cap allows it (reserved), else in a new spool file. */
  async place(bytes: number): Promise<PartPlace> {
    return new PartPlace(this, bytes, this.reserve(bytes) ? undefined : await this.create());
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
  #place: PartPlace | undefined;

  constructor(
    private readonly spool: PartSpool,
    /** The part's size (what is reserved for it in memory). */
    readonly size: number,
  ) {}

  /** Takes `chunk`'s bytes (it must not change afterwards). */
  async add(chunk: Buffer): Promise<void> {
    this.#place ??= await this.spool.place(this.size);
    const file = this.#place.file;
    if (file !== undefined) await file.append(chunk);
    else this.#chunks.push(chunk);
  }

  /** The bytes taken, as one buffer; the part holds nothing afterwards. */
  async whole(): Promise<Buffer> {
    try {
      const file = this.#place?.file;
      if (file !== undefined) return await file.readInto(Buffer.allocUnsafe(file.size));
      const [only] = this.#chunks;
      return this.#chunks.length === 1 && only !== undefined ? only : Buffer.concat(this.#chunks);
    } finally {
      this.close();
    }
  }

  /** Gives up the bytes, the reservation and the spool file; once only, later calls do nothing. */
  close(): void {
    this.#chunks = [];
    this.#place?.end();
  }
}
