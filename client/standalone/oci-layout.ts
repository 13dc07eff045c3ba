/**
 * Bindles as OCI image layouts (image-spec image-layout.md): `oci-layout`, `index.json` and
 * `blobs/sha256/<hex>`. Writing puts a bindle's manifest (built by core/oci from the invoice's
 * exact bytes, which are its config blob), its parcels as layers and optionally its signature
 * referrers into a layout, tagged with `org.opencontainers.image.ref.name` = the version's tag;
 * every blob is written atomically and index.json last, so a reader never sees a manifest whose
 * blobs are not all there. Reading finds the bindle manifests in a layout (e.g. one `skopeo copy`
 * made), checks every blob it uses against its digest and turns one into a StandaloneBindle that
 * `pushStandalone` pushes like any other.
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Invoice, Label } from '../../schema/index.js';
import { invoiceParcels, parseInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { writeFileAtomic } from '../../core/fs-atomic.js';
import {
  BINDLE_ARTIFACT_TYPE,
  EMPTY_BLOB,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  buildBindleManifest,
  canonicalDescriptor,
  checkBindleManifest,
  descriptorOf,
  isBindleManifest,
  parseManifest,
  sha256Digest,
  sha256Hex,
  signatureReferrers,
  versionToTag,
  type OciContent,
  type OciDescriptor,
  type OciManifest,
} from '../../core/oci/index.js';
import { descriptorLabel } from '../../core/oci/descriptor-label.js';
import { mapLimit } from '../../core/concurrency.js';
import { checkDigest, checkFile, describeParcel, digestOf } from '../lib/parcel-digest.js';
import type { StandaloneBindle } from './standalone-bindle.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_INDEX_FILE = 'index.json';
/** The image-layout version this writes and reads. */
export const OCI_LAYOUT_VERSION = '1.0.0';
/** The index annotation naming a manifest's tag in a layout (what `oci:DIR:tag` selects). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** Manifests, configs and index.json are JSON or TOML documents: larger ones are refused unread. */
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;
const HASH_CONCURRENCY = 4;

/** index.json as this module reads and writes it. */
interface LayoutIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: OciDescriptor[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errnoOf(err: unknown): string | undefined {
  const code = err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** Where the blob with `digest` lives in the layout at `root`; only `sha256:` digests are stored (`unsupported`). */
export function blobPath(root: string, digest: string): string {
  const hex = sha256Hex(digest);
  if (hex === undefined) throw new BindleError('unsupported', `blob digest ${JSON.stringify(digest)}: only sha256 digests are supported`);
  return join(root, 'blobs', 'sha256', hex);
}

/** True when `dir` holds an `oci-layout` file (how `bindle push` tells a layout from a standalone bindle). */
export async function isOciLayout(dir: string): Promise<boolean> {
  try {
    return (await stat(join(dir, OCI_LAYOUT_FILE))).isFile();
  } catch {
    return false;
  }
}

/** True when the blob is present and matches `label`; a blob that does not match is removed. */
async function hasBlob(path: string, label: Label): Promise<boolean> {
  try {
    await checkFile(path, label, describeParcel(label));
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    if (isBindleError(err, 'size_mismatch') || isBindleError(err, 'digest_mismatch')) {
      await rm(path, { force: true });
      return false;
    }
    throw err;
  }
}

/** Writes a small blob (manifest, config, `{}`) unless an intact copy is there. */
async function putBlob(root: string, bytes: Uint8Array, name: string): Promise<void> {
  const digest = sha256Digest(bytes);
  const path = blobPath(root, digest);
  if (await hasBlob(path, descriptorLabel({ mediaType: 'application/octet-stream', digest, size: bytes.length }, name))) return;
  await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
  await writeFileAtomic(path, bytes, 0o644);
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BindleError('not_found', `cannot read ${what} ${path}: ${message(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BindleError('malformed_body', `${what} ${path} is not JSON: ${message(err)}`, { cause: err });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks `oci-layout` and reads `index.json` (its manifest descriptors checked for shape). */
async function readLayoutIndex(root: string): Promise<LayoutIndex> {
  const marker = await readJsonFile(join(root, OCI_LAYOUT_FILE), 'the OCI layout marker');
  if (!isRecord(marker) || marker.imageLayoutVersion !== OCI_LAYOUT_VERSION) {
    throw new BindleError('unsupported', `${join(root, OCI_LAYOUT_FILE)}: imageLayoutVersion must be "${OCI_LAYOUT_VERSION}"`);
  }
  const index = await readJsonFile(join(root, OCI_INDEX_FILE), 'the OCI layout index');
  const where = join(root, OCI_INDEX_FILE);
  if (!isRecord(index) || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
    throw new BindleError('malformed_body', `${where} is not an OCI image index (schemaVersion 2 with a manifests array)`);
  }
  const manifests = index.manifests.map((entry: unknown, i): OciDescriptor => {
    const { mediaType, digest, size, artifactType, annotations } = isRecord(entry) ? entry : {};
    if (typeof mediaType !== 'string' || typeof digest !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new BindleError('malformed_body', `${where}: manifests[${i}] is not a descriptor (mediaType, digest, size)`);
    }
    const notes = isRecord(annotations) ? Object.fromEntries(Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === 'string')) : undefined;
    return {
      mediaType,
      digest,
      size,
      ...(typeof artifactType === 'string' ? { artifactType } : {}),
      ...(notes === undefined ? {} : { annotations: notes }),
    };
  });
  return { schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests };
}

/** Reads a blob the layout must hold, checked against its descriptor (`not_found`, `size_mismatch`, `digest_mismatch`). */
async function readBlob(root: string, descriptor: OciDescriptor, name: string): Promise<Buffer> {
  const label = descriptorLabel(descriptor, name);
  if (descriptor.size > MAX_DOCUMENT_BYTES) {
    throw new BindleError('payload_too_large', `${name} (${descriptor.digest}) is ${descriptor.size} bytes; at most ${MAX_DOCUMENT_BYTES} are read`);
  }
  const path = blobPath(root, descriptor.digest);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new BindleError('not_found', `the OCI layout ${root} lacks the blob of ${name} (${path}): ${message(err)}`, { cause: err });
  }
  checkDigest(digestOf(bytes), label, `${name} in the OCI layout ${root}`);
  return bytes;
}

/** What `writeBindleLayout` writes. */
export interface BindleLayoutSource {
  /** The invoice's exact bytes, as the server serves them: the config blob. */
  configBytes: Buffer;
  /** What `configBytes` parse to. */
  invoice: Invoice;
  /**
   * Puts the parcel's bytes at `dest`, atomically and only when they match `label` (e.g.
   * BindleClient.downloadParcel). Called only for parcels the layout does not hold yet.
   */
  writeParcel(label: Label, dest: string): Promise<void>;
  /** Also write a referrer manifest per invoice signature (core/oci signatureReferrers). */
  signatures?: boolean;
  /** Parcels written at once (default 4). */
  concurrency?: number;
}

/** What `writeBindleLayout` did. */
export interface BindleLayoutReport {
  /** The layout directory (absolute). */
  root: string;
  /** The tag the manifest is listed under (`org.opencontainers.image.ref.name`). */
  tag: string;
  manifest: OciContent;
  /** sha256 of each parcel written, and of each one the layout already held intact. */
  written: string[];
  present: string[];
  /** Digests of the signature referrer manifests listed in index.json. */
  referrers: string[];
}

/** Makes `root` a layout: creates it or checks that it is one (or empty); refuses any other directory. */
async function prepareLayout(root: string): Promise<LayoutIndex> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
    entries = [];
  }
  if (entries.includes(OCI_LAYOUT_FILE)) return readLayoutIndex(root);
  if (entries.length > 0) {
    throw new BindleError('already_exists', `${root} is neither empty nor an OCI image layout (it has no ${OCI_LAYOUT_FILE} file): choose a new or empty directory`);
  }
  await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
  await writeFileAtomic(join(root, OCI_LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }), 0o644);
  return { schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests: [] };
}

/**
 * Writes a bindle into the OCI image layout `dir` (created when missing; an existing layout
 * gains the bindle, any other non-empty directory is refused with `already_exists`): every
 * parcel as a blob (through `source.writeParcel`, skipped when an intact copy is there), the
 * config, the manifest core/oci builds from `source.configBytes`, the empty blob when needed
 * and, with `signatures`, one referrer manifest per signature; then index.json, atomically,
 * listing the manifest under its tag (an earlier entry with that tag is replaced) and the
 * referrers. `invalid_version` when the version cannot be a tag.
 */
export async function writeBindleLayout(dir: string, source: BindleLayoutSource): Promise<BindleLayoutReport> {
  const root = resolve(dir);
  const { invoice, configBytes } = source;
  const id = `${invoice.bindle.name}/${invoice.bindle.version}`;
  const tag = versionToTag(invoice.bindle.version);
  if (tag === undefined) throw new BindleError('invalid_version', `${id}: the version is longer than an OCI tag may be (128 characters)`);
  const index = await prepareLayout(root);
  const manifest = buildBindleManifest(configBytes, invoice);
  const labels = [...new Map(invoiceParcels(invoice).map((p) => [p.label.sha256, p.label])).values()];
  const present: string[] = [];
  const written: string[] = [];
  await mapLimit(labels, source.concurrency ?? HASH_CONCURRENCY, async (label) => {
    const path = blobPath(root, `sha256:${label.sha256}`);
    if (await hasBlob(path, label)) {
      present.push(label.sha256);
      return;
    }
    await source.writeParcel(label, path);
    written.push(label.sha256);
  });
  await putBlob(root, configBytes, `the invoice of ${id}`);
  await putBlob(root, EMPTY_BLOB, 'the empty blob');
  await putBlob(root, manifest.bytes, `the manifest of ${id}`);
  const referrers = source.signatures === true ? signatureReferrers(manifest, invoice) : [];
  for (const referrer of referrers) await putBlob(root, referrer.content.bytes, `a signature referrer of ${id}`);
  const added = [descriptorOf(manifest, { artifactType: BINDLE_ARTIFACT_TYPE, annotations: { [REF_NAME_ANNOTATION]: tag } }), ...referrers.map((r) => r.descriptor)];
  const addedDigests = new Set(added.map((d) => d.digest));
  const kept = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== tag && !addedDigests.has(d.digest));
  const next: LayoutIndex = { schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests: [...kept, ...added].map(canonicalDescriptor) };
  await writeFileAtomic(join(root, OCI_INDEX_FILE), `${JSON.stringify(next, null, 2)}\n`, 0o644);
  return { root, tag, manifest, written: written.sort(), present: present.sort(), referrers: referrers.map((r) => r.content.digest) };
}

/** One bindle manifest found in a layout. */
export interface LayoutBindleManifest {
  /** Its `org.opencontainers.image.ref.name`, when index.json gives one. */
  tag: string | undefined;
  digest: string;
  manifest: OciManifest;
}

/** The bindle manifests index.json lists (a manifest claiming to be a bindle but malformed fails). */
async function bindleManifests(root: string, index: LayoutIndex): Promise<{ bindles: LayoutBindleManifest[]; others: string[] }> {
  const bindles: LayoutBindleManifest[] = [];
  const others: string[] = [];
  for (const entry of index.manifests) {
    const tag = entry.annotations?.[REF_NAME_ANNOTATION];
    const what = `manifest ${entry.digest}${tag === undefined ? '' : ` (${tag})`}`;
    if (entry.mediaType !== OCI_MANIFEST_MEDIA_TYPE) {
      others.push(`${what}: ${entry.mediaType}`);
      continue;
    }
    const manifest = parseManifest(await readBlob(root, entry, what), entry.mediaType);
    if (isBindleManifest(manifest)) bindles.push({ tag, digest: entry.digest, manifest });
    else others.push(`${what}: artifactType ${manifest.artifactType ?? 'none'}, config ${manifest.config.mediaType}`);
  }
  return { bindles, others };
}

/**
 * Reads the bindle in the OCI image layout `dir` as a standalone bindle: the config blob is the
 * invoice (it must parse, and the manifest must be its bindle manifest: core/oci
 * checkBindleManifest), the layer blobs present are its parcel files (each checked against its
 * digest and size). With `tag`, the manifest listed under that ref name; otherwise the layout
 * must hold exactly one bindle. `unsupported` when it holds none (saying what it holds instead),
 * `bad_request` when the choice is ambiguous, `not_found` for an unknown tag.
 */
export async function readLayoutBindle(dir: string, tag?: string): Promise<StandaloneBindle & { tag: string | undefined; manifestDigest: string }> {
  const root = resolve(dir);
  const index = await readLayoutIndex(root);
  const { bindles, others } = await bindleManifests(root, index);
  const chosen = tag === undefined ? bindles : bindles.filter((b) => b.tag === tag);
  const only = chosen[0];
  if (only === undefined) {
    if (tag !== undefined && bindles.length > 0) {
      throw new BindleError('not_found', `the OCI layout ${root} has no bindle tagged ${JSON.stringify(tag)} (it has ${bindles.map((b) => b.tag ?? b.digest).join(', ')})`);
    }
    throw new BindleError(
      'unsupported',
      `the OCI layout ${root} holds no bindle (a manifest with artifactType ${BINDLE_ARTIFACT_TYPE} whose config is the invoice)` +
        (others.length === 0 ? ': its index.json lists nothing' : `; it holds ${others.join('; ')}`),
    );
  }
  if (chosen.length > 1) {
    throw new BindleError('bad_request', `the OCI layout ${root} holds ${chosen.length} bindles (${chosen.map((b) => b.tag ?? b.digest).join(', ')}): choose one with --tag`);
  }
  const configBytes = await readBlob(root, only.manifest.config, `the config of manifest ${only.digest}`);
  let invoice: Invoice;
  try {
    invoice = parseInvoice(configBytes.toString('utf8'), 'toml');
  } catch (err) {
    const code = isBindleError(err) ? err.code : 'invalid_invoice';
    throw new BindleError(code, `the config of bindle manifest ${only.digest} in ${root} is not a valid invoice: ${message(err)}`, { cause: err });
  }
  checkBindleManifest(only.manifest, configBytes, invoice);
  const labels = [...new Map(invoiceParcels(invoice).map((p) => [p.label.sha256, p.label])).values()];
  const parcels = new Map<string, string>();
  await mapLimit(labels, HASH_CONCURRENCY, async (label) => {
    const path = blobPath(root, `sha256:${label.sha256}`);
    try {
      await checkFile(path, label, `${describeParcel(label)} in the OCI layout ${root}`);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw err;
    }
    parcels.set(label.sha256, path);
  });
  return { invoice, parcels, root, tag: only.tag, manifestDigest: only.digest };
}
