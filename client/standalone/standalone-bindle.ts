/**
 * Standalone bindles (PROTOCOL.md §6): `<dir>/<canonicalId>/invoice.toml` plus
 * `<dir>/<canonicalId>/parcels/<sha256>.dat`, or `<canonicalId>.tar.gz` holding that one
 * directory. Reading verifies every parcel file present; writing and exporting are atomic.
 * The same layout is the client's local cache (BINDLE_DIRECTORY).
 */
import { createReadStream, createWriteStream, type Dirent } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { create as createTar, extract as extractTar } from 'tar';
import type { Invoice, Label } from '../../schema/index.js';
import { canonicalInvoice, invoiceParcels, labelOnInvoice, parseInvoice, renderInvoice, toInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { fsyncDir, tempPathFor } from '../../core/fs-atomic.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { mapLimit } from '../../core/concurrency.js';
import { checkDigest, describeParcel, digestFile, digestOf, ParcelDigestStream, readCheckedFile, SMALL_PARCEL_BYTES } from '../lib/parcel-digest.js';

export const INVOICE_FILE = 'invoice.toml';
export const PARCELS_DIR = 'parcels';
const PARCEL_FILE = /^([0-9a-f]{64})\.dat$/;
/** Parcel files hashed at once when reading... */
const HASH_CONCURRENCY = 4;
/**
 * ...and small ones (read whole) at once: each is a few thread-pool round trips and little work,
 * so more of them in flight keep the pool busy (1000 files of 4 KiB: ~160 instead of ~215–560 ms,
 * on a loaded machine). Not synchronous reads: on files not in the page cache those wait for
 * the disk one at a time (1.3 s for 1000 here).
 */
const SMALL_READ_CONCURRENCY = 16;
/**
 * Parcel files up to SMALL_PARCEL_BYTES are read whole when a bindle is read (one read instead
 * of a chunked one), and their verified bytes kept in StandaloneBindle.contents...
 */
/** ...as long as the kept bytes of one bindle stay within this budget. */
const KEPT_BYTES_BUDGET = 64 * 1024 * 1024;

/** A standalone bindle on disk. */
export interface StandaloneBindle {
  invoice: Invoice;
  /** parcel sha → absolute file path (only the parcels present) */
  parcels: Map<string, string>;
  /**
   * parcel sha → the parcel's bytes, for small parcels that reading the bindle already read
   * and verified (see SMALL_PARCEL_BYTES), so that a push need not read them again. Optional: a
   * parcel without an entry is read from its path.
   */
  contents?: Map<string, Buffer>;
  /** The bindle directory (absolute). */
  root: string;
}

/** File name of a parcel in a standalone bindle's `parcels/` directory. */
export function parcelFileName(sha256: string): string {
  return `${sha256}.dat`;
}

/** The canonical id of an invoice (the standalone directory name). */
export function invoiceCanonicalId(invoice: Invoice): string {
  return canonicalId({ name: invoice.bindle.name, version: invoice.bindle.version });
}

function errnoOf(err: unknown): string | undefined {
  const code = err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The bindle directory: `dir` itself when it holds invoice.toml, else its one subdirectory that does. */
async function locateBindleDir(dir: string): Promise<string> {
  if (await isFile(join(dir, INVOICE_FILE))) return dir;
  const entries = await readdir(dir, { withFileTypes: true });
  const candidates: string[] = [];
  for (const e of entries) {
    if (e.isDirectory() && (await isFile(join(dir, e.name, INVOICE_FILE)))) candidates.push(e.name);
  }
  if (candidates.length === 1 && candidates[0] !== undefined) return join(dir, candidates[0]);
  if (candidates.length === 0) {
    throw new BindleError('not_found', `${dir} is not a standalone bindle: no ${INVOICE_FILE} in it or in a directory inside it`);
  }
  throw new BindleError(
    'bad_request',
    `${dir} holds ${candidates.length} standalone bindles (${candidates.sort().join(', ')}): pass the directory of one of them`,
  );
}

async function loadInvoiceFile(bindleDir: string): Promise<Invoice> {
  const path = join(bindleDir, INVOICE_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BindleError('not_found', `cannot read ${path}: ${message(err)}`, { cause: err });
  }
  try {
    return parseInvoice(text, 'toml');
  } catch (err) {
    if (isBindleError(err)) throw new BindleError(err.code, `${path}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Progress of a long local step: `done` of `total` bytes so far. Called as the work moves (at
 * most once per chunk read), and once at the end with `done === total`.
 */
export type StepProgress = (done: number, total: number) => void;

/**
 * Reads and checks a bindle directory: its invoice, and the size and sha256 of every parcel file
 * present, telling `onHashing` how many of the parcel files' bytes were hashed.
 */
async function readBindleDir(dir: string, onHashing?: StepProgress): Promise<StandaloneBindle> {
  const root = await realpath(dir);
  const invoice = await loadInvoiceFile(root);
  const cid = invoiceCanonicalId(invoice);
  const name = basename(root);
  if (/^[0-9a-f]{64}$/.test(name) && name !== cid) {
    throw new BindleError(
      'invalid_id',
      `standalone bindle ${root}: its directory is named ${name}, but its invoice ${invoice.bindle.name}/${invoice.bindle.version} has the canonical id ${cid}`,
    );
  }
  const parcelDir = join(root, PARCELS_DIR);
  let entries: Dirent[];
  try {
    entries = await readdir(parcelDir, { withFileTypes: true });
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
    entries = [];
  }
  const found: Array<{ label: Label; path: string }> = [];
  // Each file's label, looked up by digest (the first listing of it, as labelOnInvoice finds):
  // searching the list per file took ~20 ms for 1000 parcels.
  const listed = new Map<string, Label>();
  for (const { label } of invoiceParcels(invoice)) if (!listed.has(label.sha256)) listed.set(label.sha256, label);
  // One readdir with the entries' types: no stat per file (only a symbolic link is followed).
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const m = PARCEL_FILE.exec(entry.name);
    if (m?.[1] === undefined) continue;
    const path = join(parcelDir, entry.name);
    if (!(entry.isFile() || (entry.isSymbolicLink() && (await isFile(path))))) continue;
    let label = listed.get(m[1]);
    if (label === undefined) {
      try {
        label = labelOnInvoice(invoice, m[1]);
      } catch (err) {
        throw new BindleError('parcel_not_on_invoice', `standalone bindle ${root}: ${message(err)} (file ${path})`, { cause: err });
      }
    }
    found.push({ label, path });
  }
  // The labels' sizes: a file of another size fails its check below.
  const total = found.reduce((n, f) => n + f.label.size, 0);
  let hashed = 0;
  let kept = 0;
  const contents = new Map<string, Buffer>();
  const what = (label: Label, path: string): string => `${describeParcel(label)} in standalone bindle file ${path}`;
  await mapLimit(found.filter((f) => f.label.size <= SMALL_PARCEL_BYTES), SMALL_READ_CONCURRENCY, async ({ label, path }) => {
    const data = await readCheckedFile(path, label, what(label, path));
    onHashing?.((hashed += data.length), total);
    if (kept + data.length <= KEPT_BYTES_BUDGET) {
      kept += data.length;
      contents.set(label.sha256, data);
    }
  });
  await mapLimit(found.filter((f) => f.label.size > SMALL_PARCEL_BYTES), HASH_CONCURRENCY, async ({ label, path }) => {
    const digest = await digestFile(path, (bytes) => onHashing?.((hashed += bytes), total));
    checkDigest(digest, label, what(label, path));
  });
  onHashing?.(total, total);
  return { invoice, parcels: new Map(found.map(({ label, path }) => [label.sha256, path])), contents, root };
}

/** Extracts a standalone tarball into `dest`; only plain files and directories are accepted. */
async function extractTarball(file: string, dest: string): Promise<void> {
  const refused: string[] = [];
  try {
    await extractTar({
      file,
      cwd: dest,
      strict: true,
      preservePaths: false,
      filter: (path, entry) => {
        const type = 'type' in entry ? entry.type : entry.isDirectory() ? 'Directory' : 'File';
        if (type === 'File' || type === 'OldFile' || type === 'Directory') return true;
        refused.push(`${path} (${type})`);
        return false;
      },
    });
  } catch (err) {
    throw new BindleError('malformed_body', `${file} is not a valid standalone bindle tarball (.tar.gz): ${message(err)}`, { cause: err });
  }
  if (refused.length > 0) {
    throw new BindleError('malformed_body', `${file}: a standalone bindle holds only files and directories, not ${refused.join(', ')}`);
  }
}

/**
 * Reads a standalone bindle from a directory (the bindle directory itself, or a directory that
 * holds exactly one) or from a `.tar.gz` (extracted to a temp directory that `cleanup` removes;
 * for a directory `cleanup` does nothing). Every parcel file present must be listed on the
 * invoice (`parcel_not_on_invoice`) and match its label (`size_mismatch` / `digest_mismatch`).
 * Files in `parcels/` not named `<sha256>.dat` are ignored. `onHashing` follows the hashing of
 * the parcel files, which takes a while for large ones.
 */
export async function readStandalone(path: string, opts: { onHashing?: StepProgress } = {}): Promise<StandaloneBindle & { cleanup(): Promise<void> }> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new BindleError('not_found', `standalone bindle ${path} not found: ${message(err)}`, { cause: err });
  }
  if (info.isDirectory()) {
    const bindle = await readBindleDir(await locateBindleDir(path), opts.onHashing);
    return { ...bindle, cleanup: () => Promise.resolve() };
  }
  const temp = await mkdtemp(join(tmpdir(), 'bindle-standalone-'));
  const cleanup = (): Promise<void> => rm(temp, { recursive: true, force: true });
  try {
    await extractTarball(path, temp);
    const top = await readdir(temp, { withFileTypes: true });
    const only = top[0];
    if (top.length !== 1 || only === undefined || !only.isDirectory()) {
      throw new BindleError(
        'malformed_body',
        `${path}: a standalone bindle tarball holds exactly one directory (named after the canonical id); found ${top.map((e) => e.name).join(', ') || 'nothing'}`,
      );
    }
    const bindle = await readBindleDir(join(temp, only.name), opts.onHashing);
    return { ...bindle, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function writeSyncedFile(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeParcel(target: string, label: Label, data: Buffer | string): Promise<void> {
  const what = `${describeParcel(label)} to write into a standalone bindle`;
  if (Buffer.isBuffer(data)) {
    checkDigest(digestOf(data), label, what);
    await writeSyncedFile(target, data);
    return;
  }
  await pipeline(
    createReadStream(data),
    new ParcelDigestStream(label, `${what} (from ${data})`),
    createWriteStream(target, { flags: 'wx', mode: 0o644, flush: true }),
  );
}

/**
 * Writes `<outDir>/<canonicalId>/` with `invoice.toml` and `parcels/<sha>.dat` for each given
 * parcel (bytes, or the path of a file), atomically: everything is built in a temp directory
 * inside `outDir` and renamed into place. Each parcel must be on the invoice
 * (`parcel_not_on_invoice`) and match its label; the bindle directory must not exist yet
 * (`already_exists`). Returns the bindle directory.
 */
export async function writeStandalone(outDir: string, invoice: Invoice, parcels: Map<string, Buffer | string>): Promise<string> {
  const checked = toInvoice(canonicalInvoice(invoice));
  const cid = invoiceCanonicalId(checked);
  const target = join(resolve(outDir), cid);
  const labels = [...parcels.keys()].map((sha) => labelOnInvoice(checked, sha));
  await mkdir(dirname(target), { recursive: true });
  const exists = async (): Promise<boolean> => stat(target).then(() => true, () => false);
  const alreadyExists = (): BindleError =>
    new BindleError('already_exists', `standalone bindle ${target} (${checked.bindle.name}/${checked.bindle.version}) already exists`);
  if (await exists()) throw alreadyExists();
  const staging = await mkdtemp(join(dirname(target), `.${cid}.`));
  try {
    await writeSyncedFile(join(staging, INVOICE_FILE), renderInvoice(checked, 'toml'));
    await mkdir(join(staging, PARCELS_DIR));
    await mapLimit(labels, HASH_CONCURRENCY, async (label) => {
      const data = parcels.get(label.sha256);
      if (data !== undefined) await writeParcel(join(staging, PARCELS_DIR, parcelFileName(label.sha256)), label, data);
    });
    await fsyncDir(join(staging, PARCELS_DIR));
    await fsyncDir(staging);
    if (await exists()) throw alreadyExists();
    try {
      await rename(staging, target);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw alreadyExists();
      throw err;
    }
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  await fsyncDir(dirname(target));
  return target;
}

/**
 * Packs a standalone bindle directory (named after its canonical id, else `invalid_id`) into
 * `<outDir>/<canonicalId>.tar.gz`, holding that one directory with its invoice and parcel files
 * (nothing else). The bindle is read and verified first (`onHashing`); the tarball is written
 * atomically, `onCompressing` following the bytes packed and compressed so far. Returns its path.
 */
export async function exportTarball(
  bindleDir: string,
  outDir: string,
  opts: { onHashing?: StepProgress; onCompressing?: StepProgress } = {},
): Promise<string> {
  const bindle = await readBindleDir(bindleDir, opts.onHashing);
  const cid = invoiceCanonicalId(bindle.invoice);
  if (basename(bindle.root) !== cid) {
    throw new BindleError(
      'invalid_id',
      `cannot export ${bindle.root}: a standalone bindle directory must be named after its canonical id ${cid}`,
    );
  }
  const out = join(resolve(outDir), `${cid}.tar.gz`);
  await mkdir(dirname(out), { recursive: true });
  const temp = tempPathFor(out);
  const keep = new Set([cid, `${cid}/${INVOICE_FILE}`, `${cid}/${PARCELS_DIR}`]);
  for (const sha of bindle.parcels.keys()) keep.add(`${cid}/${PARCELS_DIR}/${parcelFileName(sha)}`);
  // The tar stream's size: its parcel files and invoice (headers and padding add a little).
  let total = (await stat(join(bindle.root, INVOICE_FILE))).size;
  for (const path of bindle.parcels.values()) total += (await stat(path)).size;
  let packed = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      packed += chunk.length;
      opts.onCompressing?.(Math.min(packed, total - 1), total);
      callback(null, chunk);
    },
  });
  try {
    const tar = createTar({ cwd: dirname(bindle.root), portable: true, filter: (path) => keep.has(path.replace(/\/+$/, '')) }, [cid]);
    await pipeline(tar, counted, createGzip(), createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
    opts.onCompressing?.(total, total);
    await rename(temp, out);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(out));
  return out;
}

/** The parcels an invoice lists that the standalone bindle does not hold. */
export function absentParcels(bindle: StandaloneBindle): Label[] {
  const seen = new Set<string>();
  const absent: Label[] = [];
  for (const { label } of invoiceParcels(bindle.invoice)) {
    if (seen.has(label.sha256) || bindle.parcels.has(label.sha256)) continue;
    seen.add(label.sha256);
    absent.push(label);
  }
  return absent;
}
