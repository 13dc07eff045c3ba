/**
 * The OCI Distribution side of the Bindle provider (README "OCI"): reads of manifests (by tag =
 * version or by digest), blobs (parcels, config blobs, manifests, the empty blob), tags and
 * signature referrers, over the same invoice index and parcel store as the Bindle API. Like
 * BindleService it keeps no state: what it serves was written with each invoice
 * (server/storage/oci-records.ts). Routes (server/oci/) translate HTTP to these calls.
 */
import type { Readable } from 'node:stream';
import { BindleError } from '../../core/errors/bindle-error.js';
import {
  EMPTY_BLOB,
  EMPTY_DIGEST,
  isSha256Digest,
  parseManifest,
  sha256Hex,
  tagToVersion,
  type OciDescriptor,
} from '../../core/oci/index.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { OciManifestRecord, OciTagPage } from '../storage/oci-records.js';
import type { ByteRange, ParcelStore } from '../storage/parcel-store.js';

/** A blob found by digest: bytes kept in the index, or a parcel streamed from the parcel store. */
export type OciBlob = { kind: 'bytes'; bytes: Buffer; size: number } | { kind: 'parcel'; sha256: string; size: number };

export interface OciServiceDeps {
  index: InvoiceIndex;
  parcels: ParcelStore;
}

export class OciService {
  private readonly deps: OciServiceDeps;

  constructor(deps: OciServiceDeps) {
    this.deps = deps;
  }

  /**
   * The manifest `reference` names under `name`: a tag is a version (`_` for `+`) of an unyanked
   * invoice; a digest names a bindle manifest or a signature referrer, yanked or not (an
   * explicit, immutable request: the record says it is yanked). not_found otherwise.
   */
  async manifest(name: string, reference: string): Promise<OciManifestRecord> {
    if (reference.includes(':')) {
      const found = isSha256Digest(reference) ? await this.deps.index.ociManifestByDigest(name, reference) : undefined;
      if (found === undefined) throw new BindleError('not_found', `manifest ${reference} is not in repository ${name}`);
      return found;
    }
    const version = tagToVersion(reference);
    if (version === undefined) {
      throw new BindleError('not_found', `tag ${JSON.stringify(reference)} of ${name} is not a version (tags are SemVer 2 versions with "_" for "+")`);
    }
    const found = await this.deps.index.ociManifest(name, version);
    if (found === undefined) throw new BindleError('not_found', `bindle ${name}/${version} does not exist`);
    if (found.yanked) throw new BindleError('not_found', `bindle ${name}/${version} has been yanked: it is served by digest only`);
    return found;
  }

  /**
   * The blob with `digest` in repository `name`: the empty blob, a config blob or manifest of one
   * of its invoices, or a stored parcel listed on one of them. not_found otherwise (also for
   * digests of other algorithms than sha256, which this registry never stores).
   */
  async blob(name: string, digest: string): Promise<OciBlob> {
    if (digest === EMPTY_DIGEST) return { kind: 'bytes', bytes: EMPTY_BLOB, size: EMPTY_BLOB.length };
    const hex = sha256Hex(digest);
    if (hex !== undefined) {
      const { index, parcels } = this.deps;
      const listed = (await index.invoicesWithParcel(hex)).some((entry) => entry.name === name);
      const stat = listed ? await parcels.stat(hex) : undefined;
      if (stat !== undefined) return { kind: 'parcel', sha256: hex, size: stat.size };
      const bytes = (await index.ociConfig(name, digest)) ?? (await index.ociManifestByDigest(name, digest))?.bytes;
      if (bytes !== undefined) return { kind: 'bytes', bytes, size: bytes.length };
    }
    throw new BindleError('not_found', `blob ${digest} is not in repository ${name}`);
  }

  /** Opens a parcel blob (or a range of it) found by `blob`. */
  openParcel(sha256: string, range?: ByteRange): Promise<Readable> {
    return this.deps.parcels.openRead(sha256, range);
  }

  /** A page of the tags of `name` (unyanked versions, byte order); not_found for an unknown name. */
  async tags(name: string, last: string | undefined, n: number): Promise<OciTagPage> {
    const page = await this.deps.index.ociTags(name, last, n);
    if (page === undefined) throw new BindleError('not_found', `repository ${name} does not exist`);
    return page;
  }

  /**
   * The descriptors of the signature referrers of manifest `subject` in `name`, only those of
   * `artifactType` when given; empty when there are none (also for an unknown subject).
   */
  async referrers(name: string, subject: string, artifactType?: string): Promise<OciDescriptor[]> {
    const records = await this.deps.index.ociReferrers(name, subject);
    const descriptors = records.map((record) => {
      const manifest = parseManifest(record.bytes);
      return {
        mediaType: manifest.mediaType,
        digest: record.digest,
        size: record.bytes.length,
        ...(manifest.artifactType === undefined ? {} : { artifactType: manifest.artifactType }),
        ...(manifest.annotations === undefined ? {} : { annotations: manifest.annotations }),
      };
    });
    return artifactType === undefined ? descriptors : descriptors.filter((d) => d.artifactType === artifactType);
  }
}
