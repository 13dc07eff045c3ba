/**
 * The OCI Distribution side of the Bindle provider (README "OCI"): reads of manifests (by tag =
 * version or by digest), blobs (parcels, config blobs, manifests, the empty blob), tags and
 * signature referrers, over the same invoice index and parcel store as the Bindle API; blob
 * uploads and mounts, which link the blob in its repository (server/storage/oci-blob-links.ts);
 * and the repository catalog. Like BindleService it keeps no state: what it serves was written
 * with each invoice (server/storage/oci-records.ts) or as a link, in the index. Routes
 * (server/oci/) translate HTTP to these calls.
 */
import type { Readable } from 'node:stream';
import type { Invoice } from '../../schema/index.js';
import { decodeDocument } from '../../core/codec/document-codec.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import { mapLimit } from '../../core/concurrency.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import {
  EMPTY_BLOB,
  EMPTY_DIGEST,
  assertBindleManifest,
  checkBindleManifest,
  isOciName,
  isSha256Digest,
  parseManifest,
  sha256Digest,
  sha256Hex,
  tagToVersion,
  type OciDescriptor,
} from '../../core/oci/index.js';
import { readBody } from '../http/request-parsing.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { OciArtifact, OciManifestRecord, OciTagPage } from '../storage/oci-records.js';
import type { OciRepositoryPage } from '../storage/oci-blob-links.js';
import type { ParcelReader } from '../storage/parcel-reader.js';
import type { ParcelStore } from '../storage/parcel-store.js';
import { PassedBytes, checkParcelBytes } from '../storage/parcel-upload.js';
import { OciUploads, linkVerifiedBlob } from './oci-uploads.js';

/** A blob found by digest: bytes kept in the index, or a parcel (read as BindleService.readParcel reads it). */
export type OciBlob = { kind: 'bytes'; bytes: Buffer; size: number } | { kind: 'parcel'; sha256: string; size: number };

export interface OciServiceDeps {
  index: InvoiceIndex;
  parcels: ParcelStore;
  /** Parcel reads, shared with the Bindle API (sizes remembered, small parcels from memory). */
  reader: ParcelReader;
  maxParcelBytes: number;
  /** Upload sessions idle longer than this are abandoned (default: the parcel stores' staging max age). */
  stagingMaxAgeMs?: number;
  /** Unix milliseconds (blob links' and sessions' times); injectable for tests. */
  nowMs?: () => number;
}

/** Creates a bindle as POST /_i does (BindleService.createInvoice), keeping the pushed artifact. */
export type CreateBindle = (invoice: Invoice, artifact: OciArtifact) => Promise<unknown>;

/** The fewest repository names `catalog` reads from the index at once, and the most. */
const CATALOG_BATCH = 100;
const MAX_CATALOG_BATCH = 1000;

/** Layers of a pushed manifest whose place in the repository is looked up at once. */
const REPOSITORY_LOOK_UPS = 16;

/** The largest config blob (a pushed invoice) a manifest may name. */
export const MAX_CONFIG_BYTES = 16 * 2 ** 20;

export class OciService {
  private readonly deps: OciServiceDeps;
  private readonly createBindle: CreateBindle;
  /** Blob upload sessions (./oci-uploads.ts). */
  readonly uploads: OciUploads;

  constructor(deps: OciServiceDeps, createBindle: CreateBindle) {
    this.deps = deps;
    this.createBindle = createBindle;
    this.uploads = new OciUploads(deps);
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
   * of its invoices, or a stored parcel listed on one of them or linked in `name` (uploaded or
   * mounted there, InvoiceIndex.linkOciBlob). not_found otherwise (also for
   * digests of other algorithms than sha256, which this registry never stores).
   */
  async blob(name: string, digest: string): Promise<OciBlob> {
    if (digest === EMPTY_DIGEST) return { kind: 'bytes', bytes: EMPTY_BLOB, size: EMPTY_BLOB.length };
    const hex = sha256Hex(digest);
    if (hex !== undefined) {
      const { index, reader } = this.deps;
      const size = (await this.inRepository(name, hex)) ? (reader.knownSize(hex) ?? (await reader.size(hex))) : undefined;
      if (size !== undefined) return { kind: 'parcel', sha256: hex, size };
      const bytes = (await index.ociConfig(name, digest)) ?? (await index.ociManifestByDigest(name, digest))?.bytes;
      if (bytes !== undefined) return { kind: 'bytes', bytes, size: bytes.length };
    }
    throw new BindleError('not_found', `blob ${digest} is not in repository ${name}`);
  }

  /**
   * Whether parcel `hex` belongs to repository `name`: listed on one of its invoices, or linked
   * there (uploaded or mounted). Only such a parcel is served by, or may be named in a manifest
   * pushed to, the repository (whether the store holds it is asked separately).
   */
  private async inRepository(name: string, hex: string): Promise<boolean> {
    const { index } = this.deps;
    return (await index.invoicesWithParcel(hex)).some((entry) => entry.name === name) || (await index.ociBlobLinked(name, hex));
  }

  private now(): number {
    return this.deps.nowMs?.() ?? Date.now();
  }

  /**
   * A page of `_catalog`: the names of the repositories (InvoiceIndex.ociRepositories) that are
   * OCI names and that `visible` accepts (the requester may pull them), in byte order, those
   * after `last`, at most `n`; `more` when another such name follows. The index is read in pages
   * until the page is full or the names run out.
   */
  async catalog(last: string | undefined, n: number, visible: (name: string) => boolean): Promise<OciRepositoryPage> {
    const names: string[] = [];
    let after = last;
    const batch = Math.min(Math.max(n + 1, CATALOG_BATCH), MAX_CATALOG_BATCH);
    for (;;) {
      const page = await this.deps.index.ociRepositories(after, batch);
      for (const name of page.names) {
        if (!isOciName(name) || !visible(name)) continue;
        if (names.length === n) return { names, more: true };
        names.push(name);
      }
      after = page.names.at(-1);
      if (!page.more || after === undefined) return { names, more: false };
    }
  }

  /** True when some invoice (yanked or not) has this name: the repository exists. */
  async repositoryExists(name: string): Promise<boolean> {
    return (await this.deps.index.ociTags(name, undefined, 0)) !== undefined;
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

  /**
   * A monolithic blob upload to repository `name`: streams `data` (exactly `size` bytes) into the
   * parcel store, which verifies size and digest before anything is visible. A blob already
   * stored is not written again, but `data` is read and must still be that blob (size_mismatch,
   * digest_mismatch). Then the blob is linked in `name` (linkVerifiedBlob), so it is served there
   * at once. When another upload stores it between that check and this one's write, the blob is
   * linked if this request's bytes all went through and are the blob (the store refused them at
   * commit time); if the store took them unread, nothing proves this client had them, so nothing
   * is linked and the upload fails `unavailable` (sent again, it is hashed against the stored blob).
   */
  async putBlob(name: string, digest: string, size: number | undefined, data: Readable): Promise<void> {
    const hex = sha256Hex(digest);
    if (hex === undefined) throw new BindleError('bad_request', `invalid digest ${JSON.stringify(digest)}: this registry takes sha256:<64 hex> digests`);
    if (size === undefined) throw new BindleError('size_mismatch', 'a monolithic blob upload needs a Content-Length');
    if (size > this.deps.maxParcelBytes) {
      throw new BindleError('payload_too_large', `blob ${digest} is ${size} bytes, over this server's limit of ${this.deps.maxParcelBytes} bytes`);
    }
    if (await this.deps.parcels.has(hex)) {
      await checkParcelBytes(hex, size, data);
    } else {
      const passed = new PassedBytes();
      data.once('error', (err) => passed.destroy(err));
      try {
        await this.deps.parcels.put(hex, size, data.pipe(passed));
      } catch (err) {
        if (!(err instanceof BindleError && err.code === 'already_exists')) throw err;
        // Another upload stored it first. Linked only when this request's bytes all went through
        // and are the blob; the store may have refused before reading them.
        if (!passed.proves(hex, size)) {
          throw new BindleError('unavailable', `another upload stored blob ${digest} at the same time: send it again`, { cause: err, retryAfterSeconds: 1 });
        }
      }
    }
    await linkVerifiedBlob(this.deps, name, hex, this.now());
  }

  /**
   * Cross-repository mount of blob `digest` from repository `from` into `name`: true (linked in
   * `name`) when the blob is stored and `from` serves it as a parcel (linked there, listed on one
   * of its invoices, or the config blob of one); false otherwise, when the caller starts an
   * ordinary upload instead (distribution-spec). The caller has checked that the requester may
   * read `from` and push to `name`.
   */
  async mount(name: string, digest: string, from: string): Promise<boolean> {
    const hex = sha256Hex(digest);
    if (hex === undefined) return false;
    const { index, parcels } = this.deps;
    const inSource = (await this.inRepository(from, hex)) || (await index.ociConfig(from, digest)) !== undefined;
    if (!inSource || !(await parcels.has(hex))) return false;
    try {
      await linkVerifiedBlob(this.deps, name, hex, this.now());
    } catch (err) {
      // Collected meanwhile: not mounted (the link left behind names nothing; collection prunes it).
      if (isBindleError(err, 'unavailable')) return false;
      throw err;
    }
    return true;
  }

  /**
   * A manifest PUT: accepted only when it is a bindle manifest whose config blob (already
   * uploaded) is an invoice of `name`, tagged with its version (or pushed by its own digest),
   * whose layers are its parcels, all uploaded. The invoice then becomes a bindle exactly as
   * POST /_i makes one (verified, host-signed), and the pushed bytes are kept verbatim.
   * Pushing the same manifest again is accepted (idempotent); another one for a stored version
   * is already_exists. Returns the manifest's digest.
   */
  async putManifest(name: string, reference: string, bytes: Buffer, contentType: string | undefined): Promise<string> {
    const digest = sha256Digest(bytes);
    if (reference.includes(':') && reference !== digest) {
      throw new BindleError('digest_mismatch', `the manifest's digest is ${digest}, not ${reference}`);
    }
    const manifest = parseManifest(bytes, contentType);
    assertBindleManifest(manifest);
    const config = await this.readConfig(name, manifest.config);
    let invoice: Invoice;
    try {
      invoice = parseInvoice(decodeDocument(config, 'toml'), 'toml', 'body');
    } catch (err) {
      throw new BindleError('manifest_invalid', `the config blob is not a valid invoice: ${(err as Error).message}`, { cause: err });
    }
    const { name: invoiceName, version } = invoice.bindle;
    if (invoiceName !== name) throw new BindleError('manifest_invalid', `the invoice names bindle ${invoiceName}, not ${name}`);
    if (!reference.includes(':') && tagToVersion(reference) !== version) {
      throw new BindleError('manifest_invalid', `a bindle is pushed under the tag of its version: ${version.replaceAll('+', '_')}, not ${reference}`);
    }
    checkBindleManifest(manifest, config, invoice);
    // Each layer must be stored and in this repository (uploaded or mounted here, or on one of its
    // bindles), as the CNCF registry asks: a blob stored for another repository is not this one's
    // to name without a mount, which checks that the pusher may pull it there.
    const layers = [...new Set(manifest.layers.map((l) => sha256Hex(l.digest) ?? '').filter((h) => h !== ''))];
    const missing = await this.deps.parcels.missing(layers);
    const outside = await mapLimit(layers, REPOSITORY_LOOK_UPS, async (hex) => (missing.has(hex) || (await this.inRepository(name, hex)) ? undefined : hex));
    const unknown = [...missing, ...outside.filter((hex) => hex !== undefined)];
    if (unknown.length > 0) {
      throw new BindleError('manifest_blob_unknown', `upload these layers to ${name} first: ${unknown.map((h) => `sha256:${h}`).join(', ')}`);
    }
    const existing = await this.deps.index.ociManifest(name, version);
    if (existing !== undefined) {
      if (existing.digest === digest) return digest;
      throw new BindleError('already_exists', `bindle ${name}/${version} already exists with manifest ${existing.digest}: bindles are immutable`);
    }
    try {
      await this.createBindle(invoice, { manifest: bytes, config });
    } catch (err) {
      // A racing push of the same manifest (in any replica) won: the same result.
      if (err instanceof BindleError && err.code === 'already_exists' && (await this.deps.index.ociManifest(name, version))?.digest === digest) return digest;
      throw err;
    }
    return digest;
  }

  /**
   * The bytes of a manifest's config blob: the config of a bindle of `name` (as `blob` serves it:
   * a manifest pulled from here pushes back), else an uploaded blob; manifest_blob_unknown when
   * it is neither.
   */
  private async readConfig(name: string, descriptor: OciDescriptor): Promise<Buffer> {
    const hex = sha256Hex(descriptor.digest);
    if (hex === undefined) throw new BindleError('manifest_invalid', `config.digest must be a sha256 digest, not ${descriptor.digest}`);
    if (descriptor.size > MAX_CONFIG_BYTES) throw new BindleError('manifest_invalid', `the config blob is over ${MAX_CONFIG_BYTES} bytes`);
    const known = await this.deps.index.ociConfig(name, descriptor.digest);
    if (known !== undefined) return known;
    if (!(await this.deps.parcels.has(hex)) || !(await this.inRepository(name, hex))) {
      throw new BindleError('manifest_blob_unknown', `upload the config blob ${descriptor.digest} to ${name} first`);
    }
    return readBody(await this.deps.parcels.openRead(hex), MAX_CONFIG_BYTES, 'the config blob');
  }
}

