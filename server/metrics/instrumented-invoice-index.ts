/**
 * An InvoiceIndex decorator that records every operation's duration and failures into
 * ServerMetrics. It changes no behaviour: each call goes to the wrapped index unchanged (so the
 * InvoiceIndex contract holds as the wrapped index keeps it). Wrapped where implementations are
 * chosen (server/server-runtime.ts), never inside a backend.
 */
import { performance } from 'node:perf_hooks';
import type { InsertOptions, InvoiceIndex, InvoiceQuery, InvoiceQueryResult, StoredInvoice, Tombstone } from '../storage/invoice-index.js';
import type { OciManifestRecord, OciTagPage } from '../storage/oci-records.js';
import type { OciUploadChunk, OciUploadSession } from '../storage/oci-uploads.js';
import type { OciBlobLink, OciRepositoryPage } from '../storage/oci-blob-links.js';
import { OperationTimer } from './operation-timer.js';
import type { ServerMetrics } from './server-metrics.js';

type Operation =
  | 'insert' | 'get' | 'lookup' | 'yank' | 'query' | 'invoices_with_parcel' | 'count'
  | 'delete' | 'tombstone' | 'tombstones' | 'add_tombstone'
  | 'oci_manifest' | 'oci_manifest_by_digest' | 'oci_config' | 'oci_tags' | 'oci_referrers'
  | 'create_oci_upload' | 'oci_upload' | 'append_oci_upload' | 'delete_oci_upload'
  | 'link_oci_blob' | 'oci_blob_linked' | 'oci_blob_links' | 'oci_blob_link_page' | 'unlink_oci_blob' | 'oci_repositories';

export class InstrumentedInvoiceIndex implements InvoiceIndex {
  readonly #inner: InvoiceIndex;
  readonly #timer: OperationTimer<Operation>;

  /**
   * Present when the wrapped index has it. A hit is recorded as a lookup (it answers the same
   * question); a miss is not, as the caller then asks lookup(), which is.
   */
  readonly cachedInvoice?: (name: string, version: string) => StoredInvoice | undefined;

  constructor(inner: InvoiceIndex, metrics: ServerMetrics) {
    this.#inner = inner;
    this.#timer = new OperationTimer(metrics, 'invoice_index');
    const cached = inner.cachedInvoice?.bind(inner);
    if (cached !== undefined) {
      this.cachedInvoice = (name, version) => {
        const start = performance.now();
        const found = cached(name, version);
        if (found !== undefined) this.#timer.recordSince('lookup', start);
        return found;
      };
    }
  }

  insert(entry: StoredInvoice, options?: InsertOptions): Promise<void> {
    return this.#timer.observe('insert', performance.now(), this.#inner.insert(entry, options));
  }

  delete(tombstone: Tombstone): Promise<void> {
    return this.#timer.observe('delete', performance.now(), this.#inner.delete(tombstone));
  }

  tombstone(name: string, version: string): Promise<Tombstone | undefined> {
    return this.#timer.observe('tombstone', performance.now(), this.#inner.tombstone(name, version));
  }

  tombstones(): Promise<Tombstone[]> {
    return this.#timer.observe('tombstones', performance.now(), this.#inner.tombstones());
  }

  addTombstone(tombstone: Tombstone): Promise<boolean> {
    return this.#timer.observe('add_tombstone', performance.now(), this.#inner.addTombstone(tombstone));
  }

  ociManifest(name: string, version: string): Promise<OciManifestRecord | undefined> {
    return this.#timer.observe('oci_manifest', performance.now(), this.#inner.ociManifest(name, version));
  }

  ociManifestByDigest(name: string, digest: string): Promise<OciManifestRecord | undefined> {
    return this.#timer.observe('oci_manifest_by_digest', performance.now(), this.#inner.ociManifestByDigest(name, digest));
  }

  ociConfig(name: string, digest: string): Promise<Buffer | undefined> {
    return this.#timer.observe('oci_config', performance.now(), this.#inner.ociConfig(name, digest));
  }

  ociTags(name: string, last: string | undefined, n: number): Promise<OciTagPage | undefined> {
    return this.#timer.observe('oci_tags', performance.now(), this.#inner.ociTags(name, last, n));
  }

  ociReferrers(name: string, subject: string): Promise<OciManifestRecord[]> {
    return this.#timer.observe('oci_referrers', performance.now(), this.#inner.ociReferrers(name, subject));
  }

  createOciUpload(session: OciUploadSession, expireBefore: number): Promise<void> {
    return this.#timer.observe('create_oci_upload', performance.now(), this.#inner.createOciUpload(session, expireBefore));
  }

  ociUpload(uuid: string): Promise<OciUploadSession | undefined> {
    return this.#timer.observe('oci_upload', performance.now(), this.#inner.ociUpload(uuid));
  }

  appendOciUpload(uuid: string, offset: number, chunk: OciUploadChunk, updatedAt: number): Promise<boolean> {
    return this.#timer.observe('append_oci_upload', performance.now(), this.#inner.appendOciUpload(uuid, offset, chunk, updatedAt));
  }

  deleteOciUpload(uuid: string): Promise<boolean> {
    return this.#timer.observe('delete_oci_upload', performance.now(), this.#inner.deleteOciUpload(uuid));
  }

  linkOciBlob(link: OciBlobLink): Promise<void> {
    return this.#timer.observe('link_oci_blob', performance.now(), this.#inner.linkOciBlob(link));
  }

  ociBlobLinked(name: string, sha256: string): Promise<boolean> {
    return this.#timer.observe('oci_blob_linked', performance.now(), this.#inner.ociBlobLinked(name, sha256));
  }

  ociBlobLinks(sha256: string): Promise<OciBlobLink[]> {
    return this.#timer.observe('oci_blob_links', performance.now(), this.#inner.ociBlobLinks(sha256));
  }

  ociBlobLinkPage(after: { name: string; sha256: string } | undefined, n: number): Promise<OciBlobLink[]> {
    return this.#timer.observe('oci_blob_link_page', performance.now(), this.#inner.ociBlobLinkPage(after, n));
  }

  unlinkOciBlob(sha256: string, linkedBefore: number): Promise<number> {
    return this.#timer.observe('unlink_oci_blob', performance.now(), this.#inner.unlinkOciBlob(sha256, linkedBefore));
  }

  ociRepositories(last: string | undefined, n: number): Promise<OciRepositoryPage> {
    return this.#timer.observe('oci_repositories', performance.now(), this.#inner.ociRepositories(last, n));
  }

  get(name: string, version: string): Promise<StoredInvoice | undefined> {
    return this.#timer.observe('get', performance.now(), this.#inner.get(name, version));
  }

  lookup(name: string, version: string): Promise<StoredInvoice | Tombstone | undefined> {
    return this.#timer.observe('lookup', performance.now(), this.#inner.lookup(name, version));
  }

  yank(entry: StoredInvoice): Promise<boolean> {
    return this.#timer.observe('yank', performance.now(), this.#inner.yank(entry));
  }

  query(q: InvoiceQuery): Promise<InvoiceQueryResult> {
    return this.#timer.observe('query', performance.now(), this.#inner.query(q));
  }

  invoicesWithParcel(sha256: string): Promise<Array<{ name: string; version: string; yanked: boolean }>> {
    return this.#timer.observe('invoices_with_parcel', performance.now(), this.#inner.invoicesWithParcel(sha256));
  }

  count(): Promise<number> {
    return this.#timer.observe('count', performance.now(), this.#inner.count());
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
