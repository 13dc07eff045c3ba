/**
 * Atomic file writes shared by every layer: write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory. Readers see the old file or the new one,
 * never a partial one. Streamed data is written in batches of about 1 MiB (one `writev` per
 * batch, the next batch read while the previous one is written): every file system call costs
 * a thread-pool round trip, so writing each 64 KiB network chunk on its own would cost more
 * than the copy itself. For the same reason a directory is opened and closed for its fsync
 * synchronously: only the fsync, which waits for the disk, goes through the pool.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsync, openSync, writev } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

/** Streamed data is written once this many bytes have been gathered... */
export const WRITE_BATCH_BYTES = 1 << 20;
/** ...or this many chunks (well below every system's IOV_MAX). */
const WRITE_BATCH_CHUNKS = 256;

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
   * fsync the file before returning (default true). Only a caller that detects a torn file on
   * every read (e.g. a content-addressed cache that re-hashes what it reads) may pass false.
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
  const temp = tempPathFor(target);
  const handle = await createTempFile(temp, mode);
  try {
    // The mode is set exactly (`open` applies the umask to it) while the data is written: one
    // file system call fewer in a row for each file (a `get` of 1000 small parcels writes 1000).
    const [written, chmodded] = await Promise.allSettled([
      typeof data === 'string' || data instanceof Uint8Array ? handle.writeFile(data) : writeBatched(handle, data),
      handle.chmod(mode),
    ]);
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
 * Creates `temp` (exclusive) with `mode`, making its directory only when it is missing: the
 * directory usually exists, and a `mkdir` per file costs a thread-pool round trip (a `get`
 * of 1000 small parcels spent 6 % of its main thread on them).
 */
async function createTempFile(temp: string, mode: number): Promise<FileHandle> {
  try {
    return await open(temp, 'wx', mode);
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'ENOENT')) throw err;
  }
  await mkdir(dirname(temp), { recursive: true });
  return open(temp, 'wx', mode);
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
