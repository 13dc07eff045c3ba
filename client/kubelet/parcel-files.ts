/**
 * Parcel bytes on the kubelet's disk: checking a file against its label (size, then sha256),
 * reading a module with that check, and filling a container's data directory with verified
 * read-only copies under sanitised names.
 *
 * Name sanitising (a label's `name` is chosen by the bindle's author and must never escape the
 * data directory): `/` and `\` separate path segments; empty, `.` and `..` segments are dropped
 * (so a name can be neither absolute nor climb out); control characters become `_`; a segment
 * longer than a file name may be (255 bytes of UTF-8) becomes `<first 12 hex of the sha256 of
 * the segment>-<its start>`, cut at a character boundary to 255 bytes (so one long directory
 * name shortens alike in every parcel's path). A name left empty becomes `parcel-<first 12 hex
 * of sha256>`. When two parcels would land on one path (or one's path is the other's
 * directory), or a path is longer than 1024 bytes, the later one, in invoice order, is placed
 * at the top level as `<first 12 hex of sha256>-<last segment>` (the segment cut to fit 255
 * bytes); when that is taken too, as `<sha256>`, then `<sha256>-2`, `<sha256>-3`, … (the first
 * free one): every parcel gets a path of its own, however the names were crafted.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Label } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { checkDigest, checkFile, describeParcel, digestOf, ParcelDigestStream, READ_CHUNK_BYTES } from '../lib/parcel-digest.js';

/** A parcel's label and where its verified bytes are. */
export interface ParcelFile {
  label: Label;
  path: string;
}

/** A file placed in a data directory: its label and its path relative to that directory (with `/`). */
export interface PlacedFile {
  label: Label;
  relativePath: string;
}

/** How a parcel's file is named in mismatch messages: `parcel <sha256> (<name>) at <path>`. */
function describeFile(label: Label, path: string): string {
  return `${describeParcel(label)} at ${path}`;
}

/**
 * Checks the file at `path` against `label`: its size first (cheap), then its sha256.
 * Throws `size_mismatch` or `digest_mismatch` naming the parcel and the path; `not_found` when
 * the file does not exist.
 */
export async function verifyParcelFile(path: string, label: Label): Promise<void> {
  try {
    await checkFile(path, label, describeFile(label, path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BindleError('not_found', `${describeParcel(label)} is not at ${path}`);
    throw err;
  }
}

/** Reads the whole file and checks it against `label` (as `verifyParcelFile`); returns the checked bytes. */
export async function readVerifiedParcel(path: string, label: Label): Promise<Buffer> {
  const data = await readFile(path);
  checkDigest(digestOf(data), label, describeFile(label, path));
  return data;
}

/** Copies `from` to the new file `to` (mode 0444) while hashing; removes `to` and throws when it does not match `label`. */
export async function copyVerified(from: string, to: string, label: Label): Promise<void> {
  try {
    await pipeline(
      createReadStream(from, { highWaterMark: READ_CHUNK_BYTES }),
      new ParcelDigestStream(label, describeFile(label, from)),
      createWriteStream(to, { flags: 'wx', mode: 0o444, highWaterMark: READ_CHUNK_BYTES }),
    );
    await chmod(to, 0o444);
  } catch (err) {
    // A file that was there already (EEXIST from the exclusive open) is not this copy's to remove.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') await rm(to, { force: true });
    throw err;
  }
}

// Control characters (C0 and DEL) in a name segment are replaced.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/gu;

/** The most bytes a file name (one path segment) may have: Linux's NAME_MAX. */
export const MAX_SEGMENT_BYTES = 255;

/** The most bytes of a sanitised relative path below a data directory; a longer one goes to the top level. */
export const MAX_RELATIVE_PATH_BYTES = 1024;

/** The longest start of `text` that fits `maxBytes` of UTF-8, cut between characters. */
function utf8Prefix(text: string, maxBytes: number): string {
  let out = '';
  let bytes = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char, 'utf8');
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

/** `<prefix>-<start of segment>` within MAX_SEGMENT_BYTES. */
function prefixed(prefix: string, segment: string): string {
  return `${prefix}-${utf8Prefix(segment, MAX_SEGMENT_BYTES - Buffer.byteLength(prefix, 'utf8') - 1)}`;
}

/** A segment as it may be a file name: as is when it fits MAX_SEGMENT_BYTES, else shortened (see the module comment). */
function fitSegment(segment: string): string {
  if (Buffer.byteLength(segment, 'utf8') <= MAX_SEGMENT_BYTES) return segment;
  return prefixed(createHash('sha256').update(segment, 'utf8').digest('hex').slice(0, 12), segment);
}

/** The sanitised relative path for a label name (see the module comment); '' when nothing is left. */
export function sanitiseParcelName(name: string): string {
  return name
    .split(/[/\\]/u)
    .filter((segment) => segment !== '' && segment !== '.' && segment !== '..')
    .map((segment) => fitSegment(segment.replace(CONTROL, '_')))
    .join('/');
}

/** Where each parcel goes in a data directory: sanitised names, collisions resolved (see the module comment). */
export function layoutParcelFiles(labels: readonly Label[]): PlacedFile[] {
  const files = new Set<string>();
  const dirs = new Set<string>();
  const conflicts = (path: string): boolean => {
    if (files.has(path) || dirs.has(path)) return true;
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) if (files.has(parts.slice(0, i).join('/'))) return true;
    return false;
  };
  const claim = (path: string): void => {
    files.add(path);
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  };
  return labels.map((label) => {
    const short = label.sha256.slice(0, 12);
    const clean = sanitiseParcelName(label.name);
    let path = clean === '' ? `parcel-${short}` : clean;
    if (conflicts(path) || Buffer.byteLength(path, 'utf8') > MAX_RELATIVE_PATH_BYTES) {
      const last = path.split('/').pop() ?? '';
      path = prefixed(short, last);
      for (let n = 1; conflicts(path); n++) path = n === 1 ? label.sha256 : `${label.sha256}-${n}`;
    }
    claim(path);
    return { label, relativePath: path };
  });
}

/**
 * Makes `dir` hold exactly `files` (anything there before is removed): each copied from its
 * verified cache path, re-hashed on the way (`size_mismatch` / `digest_mismatch`), laid out by
 * `layoutParcelFiles`, files mode 0444 and directories 0555 once filled. Every target path is
 * checked to stay inside `dir`.
 */
export async function populateDataDir(dir: string, files: readonly ParcelFile[]): Promise<PlacedFile[]> {
  const root = resolve(dir);
  await makeWritable(root);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const placed = layoutParcelFiles(files.map((f) => f.label));
  const createdDirs = new Set<string>([root]);
  for (const [i, place] of placed.entries()) {
    const source = files[i];
    if (source === undefined) continue;
    const target = resolve(root, ...place.relativePath.split('/'));
    if (!target.startsWith(root + sep)) {
      throw new BindleError('bad_request', `${describeParcel(place.label)}: its name would place it outside the data directory`);
    }
    for (let d = dirname(target); d !== root && !createdDirs.has(d); d = dirname(d)) createdDirs.add(d);
    await mkdir(dirname(target), { recursive: true });
    await copyVerified(source.path, target, place.label);
  }
  const deepestFirst = [...createdDirs].sort((a, b) => b.length - a.length);
  for (const d of deepestFirst) await chmod(d, 0o555);
  return placed;
}

/** Restores write permission below `dir` (left read-only by `populateDataDir`) so that it can be removed. */
export async function makeWritable(dir: string): Promise<void> {
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      await chmod(d, 0o755);
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw err;
    }
    for (const e of entries) if (e.isDirectory()) await walk(join(d, e.name));
  };
  await walk(dir);
}
