/**
 * OCI image manifests and descriptors as this mapping writes and reads them: the types, the one
 * deterministic JSON rendering (fixed key order, annotations sorted by key, no whitespace) that
 * makes a manifest's digest a pure function of its content, and the parser that checks a pushed
 * manifest's shape.
 */
import { decodeDocument, parseSyntax } from '../codec/document-codec.js';
import { BindleError } from '../errors/bindle-error.js';
import {
  DOCKER_MANIFEST_LIST_MEDIA_TYPE,
  DOCKER_MANIFEST_MEDIA_TYPE,
  EMPTY_BLOB,
  EMPTY_DIGEST,
  EMPTY_MEDIA_TYPE,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from './oci-media-types.js';
import { isDigestLike, sha256Digest } from './oci-names.js';

/** An OCI content descriptor (image-spec descriptor.md). */
export interface OciDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An OCI image manifest v1.1 (image-spec manifest.md). */
export interface OciManifest {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly artifactType?: string;
  readonly config: OciDescriptor;
  readonly layers: readonly OciDescriptor[];
  readonly subject?: OciDescriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A manifest (or index) with its exact bytes and their digest: what the registry stores and serves. */
export interface OciContent {
  readonly bytes: Buffer;
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
}

/** The image-spec empty descriptor (`{}`). */
export const EMPTY_DESCRIPTOR: OciDescriptor = { mediaType: EMPTY_MEDIA_TYPE, digest: EMPTY_DIGEST, size: EMPTY_BLOB.length };

/** Annotations with keys in code-point order, or undefined when there are none. */
function sortedAnnotations(annotations: Readonly<Record<string, string>> | undefined): Record<string, string> | undefined {
  if (annotations === undefined) return undefined;
  const keys = Object.keys(annotations).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const key of keys) out[key] = annotations[key] as string;
  return out;
}

/** The descriptor with the image-spec's key order and no absent fields. */
export function canonicalDescriptor(d: OciDescriptor): OciDescriptor {
  const annotations = sortedAnnotations(d.annotations);
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.artifactType === undefined ? {} : { artifactType: d.artifactType }),
    ...(annotations === undefined ? {} : { annotations }),
  };
}

/** Renders a manifest deterministically and digests it. */
export function renderManifest(m: OciManifest): OciContent {
  const annotations = sortedAnnotations(m.annotations);
  const ordered = {
    schemaVersion: m.schemaVersion,
    mediaType: m.mediaType,
    ...(m.artifactType === undefined ? {} : { artifactType: m.artifactType }),
    config: canonicalDescriptor(m.config),
    layers: m.layers.map(canonicalDescriptor),
    ...(m.subject === undefined ? {} : { subject: canonicalDescriptor(m.subject) }),
    ...(annotations === undefined ? {} : { annotations }),
  };
  return contentOf(Buffer.from(JSON.stringify(ordered), 'utf8'), m.mediaType);
}

/** Renders an image index listing `manifests` (the referrers API reply), deterministically. */
export function renderIndex(manifests: readonly OciDescriptor[]): OciContent {
  const ordered = { schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests: manifests.map(canonicalDescriptor) };
  return contentOf(Buffer.from(JSON.stringify(ordered), 'utf8'), OCI_INDEX_MEDIA_TYPE);
}

function contentOf(bytes: Buffer, mediaType: string): OciContent {
  return { bytes, digest: sha256Digest(bytes), size: bytes.length, mediaType };
}

/** The descriptor that points at `content`, for an index or a `subject`. */
export function descriptorOf(content: OciContent, extra?: Pick<OciDescriptor, 'artifactType' | 'annotations'>): OciDescriptor {
  return { mediaType: content.mediaType, digest: content.digest, size: content.size, ...extra };
}

/** A `manifest_invalid` error (OCI MANIFEST_INVALID). */
export function manifestInvalid(message: string): BindleError {
  return new BindleError('manifest_invalid', message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseAnnotations(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw manifestInvalid(`${where}.annotations must be an object of strings`);
  }
  return value as Record<string, string>;
}

function parseDescriptor(value: unknown, where: string): OciDescriptor {
  if (!isRecord(value)) throw manifestInvalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, artifactType } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw manifestInvalid(`${where}.mediaType must be a non-empty string`);
  if (typeof digest !== 'string' || !isDigestLike(digest)) throw manifestInvalid(`${where}.digest must be a digest (algorithm:encoded)`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw manifestInvalid(`${where}.size must be a non-negative integer`);
  if (artifactType !== undefined && typeof artifactType !== 'string') throw manifestInvalid(`${where}.artifactType must be a string`);
  const annotations = parseAnnotations(value.annotations, where);
  return {
    mediaType,
    digest,
    size,
    ...(artifactType === undefined ? {} : { artifactType }),
    ...(annotations === undefined ? {} : { annotations }),
  };
}

/**
 * Parses the bytes of a pushed manifest as an OCI image manifest. `contentType` is the request's
 * Content-Type, which must agree with the manifest's own `mediaType` when both are given.
 * Throws `unsupported` for other manifest kinds (indexes, Docker schema 2) and
 * `manifest_invalid` for anything malformed.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): OciManifest {
  let value: unknown;
  try {
    value = parseSyntax(decodeDocument(bytes, 'json'), 'json');
  } catch (err) {
    throw manifestInvalid(`the manifest is not JSON text: ${(err as Error).message.replace(/^invalid JSON: /, '')}`);
  }
  if (!isRecord(value)) throw manifestInvalid('the manifest must be a JSON object');
  const declared = value.mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw manifestInvalid('mediaType must be a string');
  const type = declared ?? contentType?.split(';')[0]?.trim();
  if (type === OCI_INDEX_MEDIA_TYPE || type === DOCKER_MANIFEST_LIST_MEDIA_TYPE || type === DOCKER_MANIFEST_MEDIA_TYPE) {
    throw new BindleError('unsupported', `this registry stores bindles only: an ${OCI_MANIFEST_MEDIA_TYPE} is accepted, not ${type}`);
  }
  if (type !== OCI_MANIFEST_MEDIA_TYPE) throw manifestInvalid(`mediaType must be ${OCI_MANIFEST_MEDIA_TYPE}`);
  if (contentType !== undefined && declared !== undefined && contentType.split(';')[0]?.trim() !== declared) {
    throw manifestInvalid(`the Content-Type ${JSON.stringify(contentType)} differs from the manifest's mediaType ${declared}`);
  }
  if (value.schemaVersion !== 2) throw manifestInvalid('schemaVersion must be 2');
  const { artifactType } = value;
  if (artifactType !== undefined && typeof artifactType !== 'string') throw manifestInvalid('artifactType must be a string');
  if (!Array.isArray(value.layers)) throw manifestInvalid('layers must be an array');
  const layers = value.layers.map((layer: unknown, i) => parseDescriptor(layer, `layers[${i}]`));
  const annotations = parseAnnotations(value.annotations, 'manifest');
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    ...(artifactType === undefined ? {} : { artifactType }),
    config: parseDescriptor(value.config, 'config'),
    layers,
    ...(value.subject === undefined ? {} : { subject: parseDescriptor(value.subject, 'subject') }),
    ...(annotations === undefined ? {} : { annotations }),
  };
}
