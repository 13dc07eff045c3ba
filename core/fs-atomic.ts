/**
 * Atomic file writes shared by every layer: write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory. Readers see the old file or the new one,
 * never a partial one. Streamed data is written in batches of about 1 MiB (one `writev` per
 * batch, the next batch read while the previous one is written): every file system call costs
 * a thread-pool round trip, so writing each 64 KiB network chunk on its own would cost more
 * than the copy itself. For the same reason a directory is opened and closed for its fsync
 * synchronously: only the fsync, which waits for the disk, goes through the pool; and a temp
 * file of bytes given whole costs two round trips, its creation and one synced write (see
 * SYNCED_CREATE_FLAGS), its mode and its closing being set synchronously.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsync, open as openCallback, openSync, writev } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

/** Streamed data is written once this many bytes have been gathered... */
export const WRITE_BATCH_BYTES = 1 << 20;
/** ...or this many chunks (well below every system's IOV_MAX). */
const WRITE_BATCH_CHUNKS = 256;

/**
 * Open flags of a new file whose bytes are written whole and must be durable: O_DSYNC makes a
 * write return only once its data (and the size, which reading it needs) is on disk, as a write
 * and an fdatasync would, in one thread-pool call instead of two. Undefined where the platform
 * has no O_DSYNC (the file is then fsynced after its write).
 */
export const SYNCED_CREATE_FLAGS: number | undefined =
  typeof constants.O_DSYNC === 'number' ? constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC : undefined;

/** open(2) through the callback API: a bare descriptor, no FileHandle. */
export const openDescriptor = promisify(openCallback);

/** A temp file name beside `target` (same filesystem, so a rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** fsync(2) of an open descriptor, in the thread pool (no FileHandle made for it). */
export const fsyncDescriptor: (fd: number) => Promise<void> = promisify(fsync);

const writevDescriptor = promisify(writev);

/**
 * fsyncs a directory so that a rename inside it is durable. Opening and closing a directory
 * touch no disk (its inode is in memory once its path was resolved) and take microseconds,
 * less than a thread-pool round trip each, so they run synchronously; the fsync runs in the pool.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncDescriptor(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Group commit of one directory's fsyncs: `sync()` resolves once an fsync of the directory that
 * started after the call has completed (so it covers every entry changed before the call), and
 * every call made while an fsync is under way shares the single next one. N concurrent uploads
 * publishing into one directory then cost about two directory fsyncs, not N.
 */
export class DirectorySync {
  readonly dir: string;
  /** The fsync under way, if any. */
  #current: Promise<void> | undefined;
  /** The fsync that starts when the current one ends; later callers join it. */
  #next: Promise<void> | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  sync(): Promise<void> {
    if (this.#next !== undefined) return this.#next;
    if (this.#current === undefined) return this.#start();
    const next = this.#current
      .catch(() => undefined)
      .then(() => {
        this.#next = undefined;
        return this.#start();
      });
    this.#next = next;
    return next;
  }

  #start(): Promise<void> {
    const run: Promise<void> = fsyncDir(this.dir).finally(() => {
      if (this.#current === run) this.#current = undefined;
    });
    this.#current = run;
    return run;
  }
}

/** Options of `writeTempFile`. */
export interface TempFileOptions {
  /**
   * Make the file durable before returning (default true): fsynced, or, for bytes given whole,
   * written through an O_DSYNC descriptor. Only a caller that detects a torn file on every read
   * (e.g. a content-addressed cache that re-hashes what it reads) may pass false.
   */
  sync?: boolean;
}

/**
 * Writes `data` (bytes, or a stream whose error aborts the write) to a new temp file beside
 * `target` (same filesystem) with `mode`, fsynced unless `opts.sync` is false, and returns its
 * path; on failure the temp file is removed. Callers publish it (rename, link). A stream's
 * chunks are batched before they are written, so its source must not reuse a chunk's memory
 * once it has yielded it (Node streams never do).
 */
export async function writeTempFile(
  target: string,
  data: string | Uint8Array | AsyncIterable<Uint8Array>,
  mode: number,
  opts: TempFileOptions = {},
): Promise<string> {
  if (typeof data === 'string') return writeTempBytes(target, Buffer.from(data, 'utf8'), mode, opts.sync !== false);
  if (data instanceof Uint8Array) return writeTempBytes(target, data, mode, opts.sync !== false);
  const temp = tempPathFor(target);
  const handle = await createTempFile(temp, () => open(temp, 'wx', mode));
  try {
    // The mode is set exactly (`open` applies the umask to it) while the data is written: one
    // file system call fewer in a row for each file.
    const [written, chmodded] = await Promise.allSettled([writeBatched(handle, data), handle.chmod(mode)]);
    if (written.status === 'rejected') throw written.reason;
    if (chmodded.status === 'rejected') throw chmodded.reason;
    if (opts.sync !== false) await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  return temp;
}

/**
 * writeTempFile for bytes given whole: two thread-pool calls, the file's creation and its
 * write (through an O_DSYNC descriptor when it must be durable: the write is its data sync; a
 * `get` of 1000 small parcels made five calls per file with a FileHandle, its write, chmod,
 * fsync and close). Setting the mode exactly (`open` applies the umask) and closing the
 * descriptor touch only the inode just made, in memory, and run synchronously: microseconds
 * each, less than a round trip through the pool.
 */
async function writeTempBytes(target: string, data: Uint8Array, mode: number, sync: boolean): Promise<string> {
  const temp = tempPathFor(target);
  const dsync = sync ? SYNCED_CREATE_FLAGS : undefined;
  const fd = await createTempFile(temp, () => openDescriptor(temp, dsync ?? 'wx', mode));
  try {
    fchmodSync(fd, mode);
    await writeChunks(descriptorWriter(fd), [data]);
    // Without O_DSYNC, or with no write to carry it, the file is synced on its own.
    if (sync && (dsync === undefined || data.length === 0)) await fsyncDescriptor(fd);
  } catch (err) {
    closeSync(fd);
    await rm(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  return temp;
}

/**
 * Creates the temp file `temp` with `create` (exclusive), making its directory only when it is
 * missing: the directory usually exists, and a `mkdir` per file costs a thread-pool round trip
 * (a `get` of 1000 small parcels spent 6 % of its main thread on them).
 */
async function createTempFile<T>(temp: string, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'ENOENT')) throw err;
  }
  await mkdir(dirname(temp), { recursive: true });
  return create();
}

/** Writes `data` to `target` atomically with the given mode (default 0600). */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const temp = await writeTempFile(target, data, mode);
  try {
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(target));
}

/** Writes the chunks of `data` in order, in batches (see the module comment), at most one write in flight. */
async function writeBatched(handle: FileHandle, data: AsyncIterable<Uint8Array>): Promise<void> {
  let batch: Uint8Array[] = [];
  let batched = 0;
  let writing: Promise<void> = Promise.resolve();
  try {
    for await (const chunk of data) {
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH_BYTES || batch.length >= WRITE_BATCH_CHUNKS) {
        await writing;
        writing = writeChunks(handle, batch);
        // Observed here so that a failed write cannot go unhandled while the next batch is read.
        writing.catch(() => undefined);
        batch = [];
        batched = 0;
      }
    }
  } finally {
    // Never leave a write running on a handle the caller is about to close.
    await writing.catch(() => undefined);
  }
  await writing;
  if (batch.length > 0) await writeChunks(handle, batch);
}

/** Where `writeChunks` writes: a FileHandle, or a bare descriptor through `descriptorWriter`. */
export interface ChunkWriter {
  /** Writes `buffers` in order at the file's current position (writev(2)); resolves with the bytes written, which may be fewer than given. */
  writev(buffers: Uint8Array[]): Promise<{ bytesWritten: number }>;
}

/** A ChunkWriter on the descriptor `fd` (writev through the callback API: no FileHandle). */
export function descriptorWriter(fd: number): ChunkWriter {
  return { writev: (buffers) => writevDescriptor(fd, buffers) };
}

/**
 * Writes every byte of `chunks` at the file's current position with `writev`, continuing
 * after a partial write.
 */
export async function writeChunks(handle: ChunkWriter, chunks: readonly Uint8Array[]): Promise<void> {
  let rest = chunks.filter((c) => c.length > 0);
  while (rest.length > 0) {
    const { bytesWritten } = await handle.writev(rest);
    if (bytesWritten <= 0) throw new Error(`writing ${rest.length} chunk(s) to a file made no progress`);
    let left = bytesWritten;
    const next: Uint8Array[] = [];
    for (const chunk of rest) {
      if (left >= chunk.length) left -= chunk.length;
      else {
        next.push(left > 0 ? chunk.subarray(left) : chunk);
        left = 0;
      }
    }
    rest = next;
  }
}
