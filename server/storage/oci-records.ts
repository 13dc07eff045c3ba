/**
 * The OCI form of a stored invoice (README "OCI"), as every InvoiceIndex keeps it: written in
 * the invoice's insert transaction and never changed afterwards (a yank rewrites the invoice's
 * documents, not these), so a manifest digest never moves. This module is the one rule for what
 * is written — `ociRowsOf` — shared by the implementations, and the types they answer with.
 */
import { OCI_MANIFEST_MEDIA_TYPE, buildBindleManifest, parseManifest, signatureReferrers, sha256Digest, versionToTag, type OciContent } from '../../core/oci/index.js';
import type { InvoiceIndex, StoredInvoice } from './invoice-index.js';

/**
 * The OCI artifact pushed for an invoice, kept verbatim: the manifest bytes the client digested
 * and the config blob it names. Absent on an entry, the index derives both from the entry
 * (config = its TOML bytes, manifest = core/oci buildBindleManifest).
 */
export interface OciArtifact {
  manifest: Buffer;
  config: Buffer;
}

/** One stored manifest: a bindle's own (position 0) or a signature referrer of it (1, 2, …). */
export interface OciManifestRecord {
  name: string;
  version: string;
  /** The invoice's yanked state now (the manifest bytes do not change when it is yanked). */
  yanked: boolean;
  /** 0 = the bindle's manifest; n = the referrer of the invoice's n-th signature. */
  position: number;
  digest: string;
  bytes: Buffer;
}

/** The columns of a manifest read with OCI_MANIFEST_SELECT, as a driver returns them. */
export interface OciManifestColumns {
  name: string;
  version: string;
  /** A boolean, or SQLite's 0/1. */
  yanked: boolean | number;
  position: number;
  digest: string;
  manifest: Buffer;
}

/** The select both SQL indexes read manifests with (`m` = oci_manifests, `i` = invoices). */
export const OCI_MANIFEST_SELECT =
  'SELECT i.name, i.version, i.yanked, m.position, m.digest, m.manifest FROM oci_manifests m JOIN invoices i ON i.id = m.invoice_id';

export function ociManifestRecord(row: OciManifestColumns): OciManifestRecord {
  return {
    name: row.name,
    version: row.version,
    yanked: row.yanked === true || row.yanked === 1,
    position: row.position,
    digest: row.digest,
    bytes: row.manifest,
  };
}

/** One page of `tags/list`: tags in byte order after `last`, at most `n`. */
export interface OciTagPage {
  tags: string[];
  /** True when tags follow the page. */
  more: boolean;
}

/** The rows an index writes with an invoice. */
export interface OciRows {
  /** The version as a tag, or null when it cannot be one (over 128 characters). */
  tag: string | null;
  configDigest: string;
  config: Buffer;
  /** Position 0 is the bindle's manifest, then one referrer per signature in invoice order. */
  manifests: Array<{ position: number; digest: string; bytes: Buffer }>;
}

/**
 * What is stored for `entry`: its pushed artifact when it has one, else the manifest built from
 * its TOML. The same entry always gives the same rows, so a backfill of invoices stored before
 * the OCI tables existed (from their current TOML) agrees between replicas.
 */
export function ociRowsOf(entry: StoredInvoice): OciRows {
  const config = entry.oci?.config ?? Buffer.from(entry.toml, 'utf8');
  const manifest = entry.oci === undefined ? buildBindleManifest(config, entry.invoice) : contentOfBytes(entry.oci.manifest);
  const referrers = signatureReferrers(manifest, entry.invoice);
  return {
    tag: versionToTag(entry.version) ?? null,
    configDigest: sha256Digest(config),
    config,
    manifests: [
      { position: 0, digest: manifest.digest, bytes: manifest.bytes },
      ...referrers.map((r, i) => ({ position: i + 1, digest: r.content.digest, bytes: r.content.bytes })),
    ],
  };
}

function contentOfBytes(bytes: Buffer): OciContent {
  return { bytes, digest: sha256Digest(bytes), size: bytes.length, mediaType: OCI_MANIFEST_MEDIA_TYPE };
}

/**
 * The OCI artifact stored for `name`/`version` (its manifest and config bytes), to insert it
 * elsewhere unchanged (bindle-server migrate): copied, a digest stays what clients know.
 */
export async function storedOciArtifact(index: InvoiceIndex, name: string, version: string): Promise<OciArtifact | undefined> {
  const manifest = await index.ociManifest(name, version);
  if (manifest === undefined) return undefined;
  const config = await index.ociConfig(name, parseManifest(manifest.bytes).config.digest);
  return config === undefined ? undefined : { manifest: manifest.bytes, config };
}
