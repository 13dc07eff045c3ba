/**
 * FileParcelStore: the ParcelStore on a local filesystem. A parcel is the file
 * `<root>/parcels/<sha256>.dat`, or, in the reference file provider's layout, the file
 * `<root>/parcels/<sha256>/parcel.dat`: an existing reference data directory is served and its
 * parcels are found, listed and removed like any other; new parcels are written flat.
 * A put streams the upload into a read-only temp file in `<root>/parcels/.tmp/` while hashing
 * it; the data is verified and made durable, then published with a no-clobber hard link to
 * `<sha256>.dat`: a parcel is visible only once complete and durable, and concurrent uploads of
 * one parcel cannot overwrite each other. The put answers once the link is durable too: an fsync
 * of `parcels/` that concurrent puts share (group commit). Two syncs in a row are the least that
 * keeps "visible only once durable" (the data before its link, the link before the answer); the
 * reference layout's directory per parcel would add an fsync of that directory to every put,
 * which no other put can share (about 0.75× against 1.0× of one fsync per parcel for 1 KiB
 * parcels here: docs/performance.md).
 * Every asynchronous file system call is a round trip through libuv's thread pool (a wake-up of
 * a pool thread and one of the main thread: context switches that cost more than most of these
 * calls themselves), so a put makes only the calls that allocate or wait for the disk that way:
 * the temp file's creation, the writes, the syncs (a parcel that fits one write batch, at most
 * 1 MiB, is written in one write through an O_DSYNC descriptor: that write is its data's sync,
 * SYNCED_CREATE_FLAGS of core/fs-atomic). The rest run synchronously, microseconds each: the look-ups of the parcel's
 * two names in `parcels/` that tell whether it is already stored (names in the directory every
 * put links into, as the link itself looks one up there), closing the temp file once it is synced, the link
 * and the unlink of the temp name. The temp file is a bare descriptor, not a FileHandle (which
 * can only be closed asynchronously).
 * Several stores (replicas) may share one directory: what a killed upload leaves (its temp
 * file) and what a killed reference upload leaves (an empty parcel directory) are removed by
 * age, at open and by a periodic sweep, never by asking whether some process is alive.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasync, linkSync, stat as statCallback, statSync, unlinkSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, opendir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';

import { BindleError } from '../../core/errors/bindle-error.js';
import { DirectorySync, descriptorWriter, fsyncDescriptor, fsyncDir, openDescriptor, SYNCED_CREATE_FLAGS, writeChunks } from '../../core/fs-atomic.js';
import { mapWithinBudget, type MainThreadBudget } from '../../core/concurrency.js';
import { isSha256Hex } from '../../core/ids/bindle-id.js';
import {
  alreadyExists,
  assertDigest,
  missingFrom,
  confirmRemoval,
  assertDigestMatches,
  assertExpectedSize,
  assertRangeShape,
  rangeNotSatisfiable,
  stagingSettings,
  Sweeper,
} from './parcel-store.js';
import type { ByteRange, ParcelStat, ParcelStore, PutResult, RemoveOutcome, StagingOptions, StoredParcel } from './parcel-store.js';
import type { BufferBudget } from './buffer-budget.js';
import { FileReadStream } from './file-read-stream.js';
import { processUploadBudget, receiveParcel, type ReceiveOptions, type UploadSink } from './parcel-upload.js';

/** Directory under the root holding the parcels (the reference's name). */
export const PARCEL_DIRECTORY = 'parcels';
/** Ending of a parcel's data file, `<sha256>.dat`, in `parcels/` (the layout new parcels are written in). */
export const PARCEL_FILE_SUFFIX = '.dat';
/** File name of a parcel's data inside its own directory, in the reference layout. */
export const PARCEL_DATA_FILE = 'parcel.dat';
/** Directory under `parcels/` holding uploads in progress; never a parcel. */
export const TEMP_DIRECTORY = '.tmp';
/** Directory under `parcels/` holding the data of parcels being removed (ParcelStore.remove). */
export const HIDDEN_DIRECTORY = '.hidden';

/**
 * Size of the reads and of an upload's writes: the filesystem calls are expensive, so they move
 * 1 MiB (an upload's are smaller while the process's upload budget gives smaller batches: see
 * ./parcel-upload.ts).
 */
const IO_CHUNK = 1 << 20;
/**
 * Full batches that may wait for the disk while the next one fills: reading, hashing and
 * writing overlap, and memory stays bounded at about this + 1 batches per upload.
 */
const MAX_WRITES_IN_FLIGHT = 2;
/**
 * Bytes written between background `fdatasync`s during an upload. The kernel then writes the
 * data back while the rest arrives, so the final fsync waits for the last few MiB, not for all
 * of it (for 100 MiB here: ~70 ms → ~8 ms, +25% upload throughput).
 */
const SYNC_EVERY = 8 * IO_CHUNK;

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * `stat`, or undefined when nothing is there. Through the callback API: a rejection from
 * fs/promises costs several times more for a missing file (measured: 1000 absent paths in
 * 19–51 ms against 4–19 ms), and `missing()` stats every parcel of a new invoice, most absent.
 */
function statIfPresent(path: string): Promise<Stats | undefined> {
  return new Promise((resolve, reject) => {
    statCallback(path, (err, info) => {
      if (err === null) resolve(info);
      else if (isMissing(err)) resolve(undefined);
      else reject(err);
    });
  });
}

/**
 * How `missing()` looks up an invoice's parcels (two names each when absent: 11,000 look-ups
 * for a 1 MiB invoice of 5,500 parcels). A synchronous `stat` in `parcels/`, whose entries the
 * kernel holds in memory, takes a few microseconds; an asynchronous one costs the main thread
 * several times that to hand to the thread pool and back (and a missing file an error object):
 * a 1 MiB invoice's create spent ~0.3 s of its main thread on them. So they run synchronously,
 * in slices of ~2 ms that let other requests in between, while they average under 0.5 ms; slower
 * ones had to wait for the disk (a directory not in memory), and the rest then go through the
 * pool, 32 at a time (starting them all at once held the event loop as long).
 */
export const LOOKUP_BUDGET: MainThreadBudget = { sliceMs: 2, slowMs: 0.5, limit: 32 };

/**
 * Entries of `parcels/` the sweep reads at a time (one thread-pool call each batch): its memory
 * stays this small however many parcels the store holds.
 */
const SWEEP_DIRECTORY_BATCH = 512;

/** Options of FileParcelStore.open. */
export interface FileParcelStoreOptions extends StagingOptions, ReceiveOptions {
  /** How `missing()` spends the main thread (default LOOKUP_BUDGET). */
  lookupBudget?: MainThreadBudget;
}

/** `statSync`, or undefined when nothing is there. */
function statSyncIfPresent(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** `promise`, observed so that a put failing before it awaits it leaves no unhandled rejection. */
function observed<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Creates the file `path` (it must not exist) with `flags` (default 'wx'), read-only from its
 * creation (the descriptor returned still writes: no chmod call), and resolves with its descriptor.
 */
function createExclusive(path: string, flags: string | number = 'wx'): Promise<number> {
  return openDescriptor(path, flags, 0o444);
}

/** fdatasync(2) of `fd` in the thread pool. */
const datasyncDescriptor: (fd: number) => Promise<void> = promisify(fdatasync);

/** Closes `fd`, ignoring a failure: once its data is synced (or given up) nothing rides on it. */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing is left to release, and nothing written is lost.
  }
}

/**
 * The sink writing an upload into the file `fd`, with a background datasync every SYNC_EVERY
 * bytes. `settle()` waits for the sync under way; a failed sync fails the next write or `settle()`.
 */
function fileSink(fd: number): { sink: UploadSink; settle: () => Promise<void> } {
  const file = descriptorWriter(fd);
  let written = 0;
  let synced = 0;
  let syncing: Promise<void> | undefined;
  let syncError: Error | undefined;
  const check = (): void => {
    if (syncError !== undefined) throw syncError;
  };
  const sink: UploadSink = {
    batchBytes: IO_CHUNK,
    maxQueued: MAX_WRITES_IN_FLIGHT,
    write: async (chunks, size) => {
      check();
      await writeChunks(file, chunks);
      written += size;
      if (syncing === undefined && written - synced >= SYNC_EVERY) {
        const mark = written;
        syncing = datasyncDescriptor(fd)
          .then(
            () => {
              synced = mark;
            },
            (err: unknown) => {
              syncError = err instanceof Error ? err : new Error(`fdatasync failed: ${JSON.stringify(err)}`);
            },
          )
          .finally(() => {
            syncing = undefined;
          });
      }
    },
  };
  return {
    sink,
    settle: async () => {
      await syncing;
      check();
    },
  };
}

/** A ParcelStore in a directory: parcels written flat, the reference layout's read as well. */
export class FileParcelStore implements ParcelStore {
  readonly root: string;
  private readonly parcelsDir: string;
  private readonly tempDir: string;
  private readonly hiddenDir: string;
  private readonly maxAgeMs: number;
  private readonly lookupBudget: MainThreadBudget;
  /** Gives each upload's write batches; a parcel that fits one is written with synced writes. */
  private readonly uploadBudget: BufferBudget;
  /** Group commit of `parcels/`, which every new parcel's link changes. */
  private readonly parcelsDirSync: DirectorySync;
  /**
   * Temp file names are this (random per store, so replicas sharing the directory never
   * collide) and a count of the store's uploads: no random bytes drawn per upload.
   */
  private readonly tempPrefix = `${randomBytes(9).toString('hex')}-`;
  private uploads = 0;
  private readonly sweeper: Sweeper;
  private readonly closedMessage: string;
  private closed = false;

  private constructor(root: string, maxAgeMs: number, lookupBudget: MainThreadBudget, uploadBudget: BufferBudget) {
    this.root = root;
    this.lookupBudget = lookupBudget;
    this.uploadBudget = uploadBudget;
    this.parcelsDir = join(root, PARCEL_DIRECTORY);
    this.tempDir = join(this.parcelsDir, TEMP_DIRECTORY);
    this.hiddenDir = join(this.parcelsDir, HIDDEN_DIRECTORY);
    this.maxAgeMs = maxAgeMs;
    this.parcelsDirSync = new DirectorySync(this.parcelsDir);
    this.closedMessage = `parcel store at ${this.root} is closed`;
    this.sweeper = new Sweeper((signal) => this.sweepOnce(signal), this.closedMessage);
  }

  /**
   * Opens (creating if needed) the store under `root`, removes abandoned uploads and hidden
   * removals (see `sweep()`; a failure fails the open), then starts the rest of a sweep, the walk
   * of `parcels/`, which goes on after open returns (its failure goes to `onSweepError`), and,
   * unless `stagingSweepMs` is 0, sweeps again at that interval while open. Existing reference
   * data is left as it is.
   *
   * The walk is left to after open because it reads every stored parcel's name
   * (~0.4 s of every start on 100,000 parcels) to find empty reference-layout directories,
   * which no operation of this store needs gone (an empty directory is no parcel, and a put
   * links into it).
   */
  static async open(root: string, options: FileParcelStoreOptions = {}): Promise<FileParcelStore> {
    const staging = stagingSettings(options);
    const store = new FileParcelStore(root, staging.stagingMaxAgeMs, options.lookupBudget ?? LOOKUP_BUDGET, options.uploadBudget ?? processUploadBudget);
    await mkdir(store.tempDir, { recursive: true });
    await mkdir(store.hiddenDir, { recursive: true });
    const cutoff = store.sweepCutoff();
    await store.sweepStagingAreas(cutoff);
    store.sweeper.start(staging.stagingSweepMs, options.onSweepError, (signal) => store.sweepParcelDirectories(cutoff, signal));
    return store;
  }

  /** Path new parcels are written to: `<root>/parcels/<sha256>.dat`. */
  dataPath(sha256: string): string {
    assertDigest(sha256);
    return join(this.parcelsDir, `${sha256}${PARCEL_FILE_SUFFIX}`);
  }

  /** Path of a parcel in the reference layout: `<root>/parcels/<sha256>/parcel.dat`. */
  referencePath(sha256: string): string {
    assertDigest(sha256);
    return join(this.parcelsDir, sha256, PARCEL_DATA_FILE);
  }

  /** Where a parcel's data may be, in the order it is looked for: `dataPath`, then `referencePath`. */
  private parcelPaths(sha256: string): readonly [string, string] {
    return [this.dataPath(sha256), this.referencePath(sha256)];
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined;
  }

  async stat(sha256: string): Promise<ParcelStat | undefined> {
    this.assertOpen();
    const info = await this.locate(sha256);
    if (info !== undefined) return { size: info.size };
    this.confirmStorage();
    return undefined;
  }

  async missing(digests: readonly string[]): Promise<Set<string>> {
    return missingFrom(digests, await this.storedSizes(digests));
  }

  async storedSizes(digests: readonly string[]): Promise<Map<string, number>> {
    this.assertOpen();
    digests.forEach(assertDigest);
    const unique = [...new Set(digests)];
    const found = await mapWithinBudget(unique, (sha) => this.locateNow(sha), (sha) => this.locate(sha), this.lookupBudget);
    const sizes = new Map<string, number>();
    unique.forEach((sha, i) => {
      const stats = found[i];
      if (stats !== undefined) sizes.set(sha, stats.size);
    });
    if (sizes.size < unique.length) this.confirmStorage();
    return sizes;
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    this.assertOpen();
    let handle: FileHandle | undefined;
    for (const path of this.parcelPaths(sha256)) {
      try {
        handle = await open(path, 'r');
        break;
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    if (handle === undefined) {
      this.confirmStorage();
      throw new BindleError('not_found', `parcel ${sha256} not found`);
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new BindleError('not_found', `parcel ${sha256} not found`);
      if (range !== undefined) {
        assertRangeShape(sha256, range);
        if (range.start >= info.size) throw rangeNotSatisfiable(sha256, range, info.size);
      } else if (info.size === 0) {
        await handle.close();
        return Readable.from([]);
      }
      // The stream reads into buffers of the size left (a small parcel: one read into a buffer
      // of its size, not a 1 MiB one) and ends without a read that finds EOF; piped into a
      // response it reuses pooled 1 MiB buffers (./file-read-stream.ts).
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? info.size - 1, info.size - 1);
      return new FileReadStream(handle, start, end);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async put(sha256: string, expectedSize: number, data: Readable): Promise<PutResult> {
    this.assertOpen();
    assertDigest(sha256);
    assertExpectedSize(expectedSize);
    const temp = join(this.tempDir, `${this.tempPrefix}${(this.uploads++).toString(36)}.part`);
    // A parcel already stored, in either layout, is refused before its body is read. A parcel
    // written in one write (one batch of the size the upload budget gives now) is written
    // durably (SYNCED_CREATE_FLAGS); any other is fsynced once complete, not synced write by write.
    if (this.locateNow(sha256) !== undefined) throw alreadyExists(sha256);
    const syncedWrites = expectedSize > 0 && expectedSize <= this.uploadBudget.size(IO_CHUNK) ? SYNCED_CREATE_FLAGS : undefined;
    const file = await this.createTemp(temp, syncedWrites);
    let fd: number | undefined = file;
    let published = false;
    try {
      const { sink, settle } = fileSink(file);
      let digest: string;
      try {
        digest = await receiveParcel(data, expectedSize, sink, this.uploadBudget);
      } finally {
        await settle();
      }
      assertDigestMatches(sha256, digest);
      if (syncedWrites === undefined) await fsyncDescriptor(file);
      // The data is durable and verified: the descriptor has nothing left to write back (a
      // failed close loses nothing), and the data is published.
      closeQuietly(file);
      fd = undefined;
      this.publish(temp, sha256);
      published = true;
      // The link holds the data now; a temp name left by a failed unlink is swept by age.
      try {
        unlinkSync(temp);
      } catch {
        // Swept later.
      }
      await this.syncParcelsDir();
      return { sha256, size: expectedSize };
    } finally {
      if (fd !== undefined) closeQuietly(fd);
      if (!published) await rm(temp, { force: true });
    }
  }

  async *list(): AsyncIterable<string> {
    this.assertOpen();
    let names: string[];
    try {
      names = await readdir(this.parcelsDir);
    } catch (err) {
      if (isMissing(err)) this.confirmStorage();
      throw err;
    }
    const digests = new Set<string>();
    for (const name of names) {
      const sha256 = name.endsWith(PARCEL_FILE_SUFFIX) ? name.slice(0, -PARCEL_FILE_SUFFIX.length) : name;
      if (isSha256Hex(sha256)) digests.add(sha256);
    }
    for (const sha256 of [...digests].sort()) {
      if (await this.has(sha256)) yield sha256;
    }
  }

  async *entries(): AsyncIterable<StoredParcel> {
    for await (const sha256 of this.list()) {
      const found = await this.locate(sha256);
      if (found !== undefined) yield { sha256, size: found.size, storedAt: found.mtimeMs };
    }
  }

  /**
   * Hides the data by renaming it into `parcels/.hidden/` (atomic; the rename's ctime dates it
   * for the sweep), in both layouts when both hold it, and restores it flat with the same
   * no-clobber link a put publishes with.
   */
  async remove(sha256: string, confirm: () => Promise<boolean>): Promise<RemoveOutcome> {
    this.assertOpen();
    const hidden: string[] = [];
    const changed: string[] = [];
    for (const [path, dir] of [
      [this.dataPath(sha256), this.parcelsDir],
      [this.referencePath(sha256), join(this.parcelsDir, sha256)],
    ] as const) {
      const target = join(this.hiddenDir, `${sha256}.${randomBytes(6).toString('hex')}`);
      try {
        await rename(path, target);
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      hidden.push(target);
      changed.push(dir);
    }
    const [kept] = hidden;
    if (kept === undefined) {
      this.confirmStorage();
      return 'absent';
    }
    await Promise.all(changed.map((dir) => fsyncDir(dir)));
    const discard = async (): Promise<void> => {
      await Promise.all(hidden.map((path) => rm(path, { force: true })));
    };
    return confirmRemoval(confirm, discard, async () => {
      try {
        this.publish(kept, sha256);
      } catch (err) {
        if (!(err instanceof BindleError && err.code === 'already_exists')) throw err;
      }
      await this.syncParcelsDir();
      await discard();
    });
  }

  /**
   * Removes what killed uploads left behind, judged by age alone so that it is safe while other
   * stores (other replicas) upload into the same directory: temp files not written to for the
   * staging age, hidden data of removals (ParcelStore.remove) that long ago, and reference-layout
   * parcel directories that stayed empty that long (what a reference upload killed before its
   * data was written leaves, which would make the reference refuse every retry). Reference
   * leftovers with content (`parcel.dat.part`) stay.
   * A call while a sweep is under way gets the next one (see Sweeper).
   */
  sweep(): Promise<void> {
    return this.sweeper.sweep();
  }

  /** Closes the store; a sweep under way stops early (see Sweeper). */
  async close(): Promise<void> {
    this.closed = true;
    await this.sweeper.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new BindleError('unavailable', this.closedMessage);
  }

  /** The stats of the parcel's data file: the flat one, else the reference layout's; undefined when neither is a file. */
  private async locate(sha256: string): Promise<Stats | undefined> {
    for (const path of this.parcelPaths(sha256)) {
      const stats = await statIfPresent(path);
      if (stats?.isFile() === true) return stats;
    }
    return undefined;
  }

  /**
   * `locate`, synchronously: the same look-ups in `parcels/` that a put's link makes anyway.
   */
  private locateNow(sha256: string): Stats | undefined {
    for (const path of this.parcelPaths(sha256)) {
      const stats = statSyncIfPresent(path);
      if (stats?.isFile() === true) return stats;
    }
    return undefined;
  }

  /**
   * Makes sure `parcels/` (made when the store opened) is still there, after a look-up that
   * found nothing: a directory deleted, or a volume unmounted, under a running store makes its
   * parcels unavailable, never absent, so that readers are not told that parcels are gone and
   * readiness fails. One `stat`, on misses only.
   */
  private confirmStorage(): void {
    if (statSyncIfPresent(this.parcelsDir)?.isDirectory() === true) return;
    throw new BindleError('unavailable', `parcel store directory ${this.parcelsDir} is missing (deleted, or its volume not mounted)`);
  }

  /**
   * Creates a put's temp file. When its directory is missing, that is either the store's whole
   * directory (unavailable, see `confirmStorage`) or only `parcels/.tmp`, removed by hand, which
   * is made again.
   */
  private async createTemp(temp: string, flags: number | undefined): Promise<number> {
    try {
      return await createExclusive(temp, flags);
    } catch (err) {
      if (!isMissing(err)) throw err;
      this.confirmStorage();
      try {
        await mkdir(this.tempDir);
      } catch (mkdirErr) {
        if (errnoCode(mkdirErr) !== 'EEXIST') throw mkdirErr;
      }
      return createExclusive(temp, flags);
    }
  }

  /** The shared fsync of `parcels/` (new links in it), observed so that a put failing first leaves no unhandled rejection. */
  private syncParcelsDir(): Promise<void> {
    return observed(this.parcelsDirSync.sync());
  }

  /**
   * Hard-links the verified file `from` to the parcel's data file, without ever replacing an
   * existing one (EEXIST: `already_exists`). Made synchronously (see the module comment).
   */
  private publish(from: string, sha256: string): void {
    try {
      linkSync(from, this.dataPath(sha256));
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') throw alreadyExists(sha256);
      throw err;
    }
  }

  /** The sweep's age rule: it removes what was last changed before this time. */
  private sweepCutoff(): number {
    return Date.now() - this.maxAgeMs;
  }

  private async sweepOnce(signal: AbortSignal): Promise<void> {
    const cutoff = this.sweepCutoff();
    await this.sweepStagingAreas(cutoff, signal);
    await this.sweepParcelDirectories(cutoff, signal);
  }

  /** The sweep's walk of `parcels/`: removes the reference layout's directories left empty before `cutoff`. */
  private async sweepParcelDirectories(cutoff: number, signal: AbortSignal): Promise<void> {
    // parcels/ holds every stored parcel: it is read a batch of entries at a time, never as one
    // list (which for 100,000 parcels held ~10 MiB of names and left the server ~24 MiB bigger).
    for await (const { name } of await opendir(this.parcelsDir, { bufferSize: SWEEP_DIRECTORY_BATCH })) {
      signal.throwIfAborted();
      if (!isSha256Hex(name)) continue;
      const dir = join(this.parcelsDir, name);
      if (!(await changedBefore(dir, cutoff))) continue;
      try {
        await rmdir(dir);
      } catch (err) {
        const code = errnoCode(err);
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && !isMissing(err)) throw err;
      }
    }
  }

  /** The sweep's part in the temp and hidden directories, which hold only uploads and removals under way. */
  private async sweepStagingAreas(cutoff: number, signal?: AbortSignal): Promise<void> {
    for (const name of await readdir(this.tempDir)) {
      signal?.throwIfAborted();
      const path = join(this.tempDir, name);
      if (await changedBefore(path, cutoff)) await rm(path, { force: true, recursive: true });
    }
    for (const name of await readdir(this.hiddenDir)) {
      signal?.throwIfAborted();
      const path = join(this.hiddenDir, name);
      try {
        if ((await stat(path)).ctimeMs < cutoff) await rm(path, { force: true });
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
  }
}

/** True when `path` was last written before `cutoff` (ms since the epoch); false when it is gone. */
async function changedBefore(path: string, cutoff: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs < cutoff;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}
