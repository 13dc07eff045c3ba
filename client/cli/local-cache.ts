/**
 * The CLI's view of the local bindle cache (`--bindle-dir`), which has the standalone layout
 * (`<dir>/<canonical id>/invoice.toml`, `<dir>/<canonical id>/parcels/<sha256>.dat`), and
 * writing output files exclusively and atomically: a file the CLI writes is complete, checked
 * and new, or absent. A cached parcel found corrupt when copied or exported out is removed from
 * the cache.
 */
import { createReadStream } from 'node:fs';
import { link, open, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Invoice, Label } from '../../schema/index.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { invoiceParcels, parseInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId, formatId, type BindleId } from '../../core/ids/bindle-id.js';
import { writeFileAtomic, writeTempFile } from '../../core/fs-atomic.js';
import { describeParcel, ParcelDigestStream } from '../lib/parcel-digest.js';

/** The directory of a bindle in the cache. */
export function cachedBindlePath(bindleDir: string, id: BindleId): string {
  return join(bindleDir, canonicalId(id));
}

/** Where a parcel of a bindle is kept in the cache. */
export function cachedParcelPath(bindleDir: string, id: BindleId, sha256: string): string {
  return join(cachedBindlePath(bindleDir, id), 'parcels', `${sha256}.dat`);
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * The cached invoice of `id`, or undefined when the cache does not hold it. A cached invoice
 * that does not parse, or names another bindle, is `invalid_invoice` (run `bindle clean`).
 */
export async function readCachedInvoice(bindleDir: string, id: BindleId): Promise<Invoice | undefined> {
  const path = join(cachedBindlePath(bindleDir, id), 'invoice.toml');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  let inv: Invoice;
  try {
    inv = parseInvoice(text);
  } catch (err) {
    throw new BindleError('invalid_invoice', `cached invoice ${path} is unreadable (remove it with 'bindle clean'): ${err instanceof Error ? err.message : String(err)}`);
  }
  if (inv.bindle.name !== id.name || inv.bindle.version !== id.version) {
    throw new BindleError('invalid_invoice', `cached invoice ${path} is for ${inv.bindle.name}/${inv.bindle.version}, not ${formatId(id)} (remove it with 'bindle clean')`);
  }
  return inv;
}

/**
 * Records in the cache that the server has yanked `id` (its cached invoice gets `yanked = true`),
 * so that a later offline use refuses it too. Nothing happens when the cache does not hold it.
 */
export async function markCachedYanked(bindleDir: string, id: BindleId): Promise<void> {
  const cached = await readCachedInvoice(bindleDir, id);
  if (cached === undefined || cached.yanked === true) return;
  await writeFileAtomic(join(cachedBindlePath(bindleDir, id), 'invoice.toml'), renderInvoice({ ...cached, yanked: true }), 0o644);
}

/** True when a file exists at `path`. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'r');
    await handle.close();
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Throws `already_exists` when `path` exists (output files are never overwritten, as in the reference). */
export async function refuseExisting(path: string, flag: string): Promise<void> {
  if (await fileExists(path)) throw new BindleError('already_exists', `${path} already exists; remove it or choose another ${flag}`);
}

/**
 * Publishes a finished temp file under `dest`, failing with `already_exists` (and removing the
 * temp file) when `dest` appeared meanwhile.
 */
async function publishExclusive(temp: string, dest: string, flag: string): Promise<void> {
  try {
    await link(temp, dest);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') throw new BindleError('already_exists', `${dest} already exists; remove it or choose another ${flag}`);
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * The longest file name, in bytes, that the common file systems take (NAME_MAX: ext4, XFS, Btrfs,
 * tmpfs, ZFS). A longer one fails with ENAMETOOLONG.
 */
export const MAX_FILE_NAME_BYTES = 255;

/** What core/fs-atomic.ts's tempPathFor adds to a base name (up to 26 bytes), with room to spare. */
const TEMP_NAME_EXTRA_BYTES = 32;

/**
 * The name a temp file for `dest` is made from: `dest` itself, unless the temp file's name (the
 * base name plus TEMP_NAME_EXTRA_BYTES at most) could pass MAX_FILE_NAME_BYTES; then a short
 * fixed name in the same directory, so that every name that fits in a directory can be written
 * there.
 */
function tempTarget(dest: string): string {
  return Buffer.byteLength(basename(dest), 'utf8') > MAX_FILE_NAME_BYTES - TEMP_NAME_EXTRA_BYTES ? join(dirname(dest), 'bindle-new') : dest;
}

/** Writes `text` to a new file `dest` (mode 0644) atomically; never replaces an existing file. */
export async function writeNewFile(dest: string, text: string, flag: string): Promise<void> {
  await publishExclusive(await writeTempFile(tempTarget(dest), text, 0o644), dest, flag);
}

/**
 * Copies `source` to a new file `dest`, checking that the bytes match `label` (size and
 * SHA-256) before the file appears. A mismatch is `size_mismatch` / `digest_mismatch` and
 * leaves nothing behind.
 */
export async function copyVerifiedNewFile(source: string | Readable, dest: string, label: Label, flag: string): Promise<void> {
  const input = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;
  const checked = new ParcelDigestStream(label, describeParcel(label));
  // A failure of the input reaches the writer through `checked`, which pipeline destroys with it.
  pipeline(input, checked).catch(() => undefined);
  await publishExclusive(await writeTempFile(tempTarget(dest), checked, 0o644), dest, flag);
}

/**
 * Copies the cached parcel `label` of `id` to a new file `dest`, checked like
 * copyVerifiedNewFile. A cached copy that is not the label's bytes is removed from the cache, so
 * that the next `get` downloads it again, and the `size_mismatch` / `digest_mismatch` thrown
 * says so.
 */
export async function copyCachedParcel(bindleDir: string, id: BindleId, label: Label, dest: string, flag: string): Promise<void> {
  const cached = cachedParcelPath(bindleDir, id, label.sha256);
  try {
    await copyVerifiedNewFile(cached, dest, label, flag);
  } catch (err) {
    if (!isBindleError(err, 'size_mismatch') && !isBindleError(err, 'digest_mismatch')) throw err;
    await rm(cached, { force: true, recursive: true });
    throw new BindleError(
      err.code,
      `${err.message}; the corrupt copy ${cached} was removed from the cache: run 'bindle get ${formatId(id)}' to download it again`,
      { cause: err },
    );
  }
}

/**
 * Runs `step`, which reads the cached bindle `id` and checks its parcels against their labels (an
 * export). When it fails with `size_mismatch` / `digest_mismatch`, every cached parcel of `id`
 * that is not its label's bytes is removed from the cache, so that the next `get` downloads it
 * again, and the error thrown says so, as copyCachedParcel's does.
 */
export async function removingCorruptParcels<T>(bindleDir: string, id: BindleId, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (!isBindleError(err, 'size_mismatch') && !isBindleError(err, 'digest_mismatch')) throw err;
    const invoice = await readCachedInvoice(bindleDir, id);
    if (invoice === undefined) throw err;
    const { checkCachedParcel } = await import('../lib/workflows.js');
    const parcelsDir = join(cachedBindlePath(bindleDir, id), 'parcels');
    const removed: string[] = [];
    const seen = new Set<string>();
    for (const { label } of invoiceParcels(invoice)) {
      if (seen.has(label.sha256)) continue;
      seen.add(label.sha256);
      if ((await checkCachedParcel(parcelsDir, label)).state !== 'corrupt') continue;
      const path = cachedParcelPath(bindleDir, id, label.sha256);
      await rm(path, { force: true, recursive: true });
      removed.push(path);
    }
    if (removed.length === 0) throw err;
    const what = removed.length === 1 ? `the corrupt copy ${removed.join('')} was` : `the corrupt copies ${removed.join(', ')} were`;
    throw new BindleError(err.code, `${err.message}; ${what} removed from the cache: run 'bindle get ${formatId(id)}' to download ${removed.length === 1 ? 'it' : 'them'} again`, {
      cause: err,
    });
  }
}
