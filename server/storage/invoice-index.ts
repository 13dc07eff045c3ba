/**
 * The invoice index seam: what the HTTP layer reads for `/_q`, invoice GETs and
 * missing-parcel checks (PROTOCOL.md §4, §5), and the only record of invoices: nothing else
 * holds them (the reference layout on disk is an import/export format, server/service/reindex.ts).
 * Implementations: SqliteInvoiceIndex, PostgresInvoiceIndex. The rules every implementation
 * follows are in invoice-index-rules.ts (paging, entry checks, search text) and
 * invoice-index-versions.ts (the version filter as SQL); every implementation passes
 * test/contract/invoice-index-contract.ts.
 */
import type { Invoice } from '../../schema/index.js';
import type { OciArtifact, OciManifestRecord, OciTagPage } from './oci-records.js';
import type { OciUploadChunk, OciUploadSession } from './oci-uploads.js';
import type { OciBlobLink, OciRepositoryPage } from './oci-blob-links.js';

/**
 * One stored invoice. `toml`/`json` are the exact bytes served for GET (never re-rendered);
 * `json` must be a JSON rendering of `invoice` (an index may keep only it and parse it back).
 */
export interface StoredInvoice {
  name: string;
  version: string;
  /** sha256(name/version), lowercase hex (core/ids/bindle-id.ts canonicalId). */
  canonicalId: string;
  invoice: Invoice;
  toml: string;
  json: string;
  yanked: boolean;
  /** Unix milliseconds. */
  createdAt: number;
  /**
   * On insert only: the OCI artifact pushed for this invoice, stored verbatim; absent, the index
   * derives it (server/storage/oci-records.ts ociRowsOf). Never read back on a StoredInvoice.
   */
  oci?: OciArtifact;
}

/**
 * The record a hard delete leaves in place of an invoice: a re-create of the same name/version
 * is refused while it exists (see InvoiceIndex.insert). `record` is the host-signed document
 * (server/service/tombstones.ts), kept as its exact text.
 */
export interface Tombstone {
  name: string;
  version: string;
  /** sha256(name/version), as StoredInvoice.canonicalId. */
  canonicalId: string;
  /** Unix milliseconds. */
  deletedAt: number;
  /** The signed record (JSON text). */
  record: string;
}

/** Whether what InvoiceIndex.lookup found is a tombstone (else it is the stored invoice). */
export function isTombstone(found: StoredInvoice | Tombstone): found is Tombstone {
  return 'record' in found;
}

/** How `insert` treats a tombstone of the same name/version. */
export interface InsertOptions {
  /** Replace it (an admin's explicit leave): it is removed in the insert's transaction. */
  replaceTombstone?: boolean;
}

/** A `/_q` query after parameter parsing. */
export interface InvoiceQuery {
  /** Space-separated terms; '' (or only spaces) = everything. */
  query: string;
  /** An exact strict version, or an npm-style SemVer range (semver package); invalid → invalid_query. */
  version?: string;
  /** Non-negative integer. */
  offset: number;
  /** Integer 1–255. */
  limit: number;
  /**
   * strict: every term is a case-sensitive substring of the name.
   * standard: every term is a case-insensitive substring of the name, version, description or
   * one of the authors.
   */
  strict: boolean;
  /** Include yanked invoices (default false). */
  yanked: boolean;
}

/** One page of matches. */
export interface InvoiceQueryResult {
  /** Number of invoices matching all filters (before offset/limit). */
  total: number;
  /** offset/limit slice of the matches, ordered by name (byte order), then SemVer descending. */
  invoices: StoredInvoice[];
}

/**
 * The searchable index of invoices. Every write is atomic (one transaction) and decided by the
 * index alone, so that several processes (replicas) may share one index with no lock of their
 * own: of racing inserts of one name/version exactly one succeeds, of racing yanks exactly one
 * writes. A write is seen by every instance's get as soon as it returns, and by instances in
 * other processes within 1 s (an implementation that caches reads invalidates them in time).
 */
export interface InvoiceIndex {
  /**
   * Inserts a new invoice; already_exists if name/version is taken (yanked or not), also when
   * another instance inserts it at the same time. Entries are checked with checkEntry. When a
   * tombstone of name/version exists: `deleted` (410), unless `options.replaceTombstone`, when
   * the tombstone is removed in the same transaction.
   *
   * Parcel sizes: the index keeps the size each stored invoice's label gives each parcel it lists.
   * An entry that gives a listed parcel another size than any stored invoice lists it with is
   * refused size_mismatch (naming the parcel, both sizes and one such invoice), in the insert's
   * transaction and with nothing written, also when the other invoice is inserted at the same time
   * by another instance: of racing inserts that disagree on a parcel's size, at most one succeeds.
   * Only stored invoices count (a hard-deleted invoice's listings go with it), and a parcel's
   * stored bytes are not looked at (BindleService checks those). Stored invoices that already
   * disagree among themselves (written before this rule) stay as they are; an entry then agrees
   * with none of them and is refused. A bulk insert (insertMany) also refuses entries that
   * disagree with each other.
   */
  insert(entry: StoredInvoice, options?: InsertOptions): Promise<void>;
  /**
   * Hard delete: in one transaction removes the invoice name/version (its parcels stay in the
   * parcel store until garbage collection) and stores `tombstone` (replacing an older one of the
   * same id). not_found if the invoice is absent, and then nothing is written. Of racing deletes
   * exactly one succeeds. Checked with checkTombstone. The same transaction removes the OCI blob
   * links of `name` to the invoice's parcels and to its config blob (see linkOciBlob): what an
   * administrator deleted is no longer served by that repository through a link (another
   * invoice of the name that lists a parcel still serves it). A yank removes no link.
   */
  delete(tombstone: Tombstone): Promise<void>;
  /** The tombstone of name/version; undefined when it was never deleted (or re-created since). */
  tombstone(name: string, version: string): Promise<Tombstone | undefined>;
  /** Every tombstone, ordered by name then version (byte order): for migration. */
  tombstones(): Promise<Tombstone[]>;
  /**
   * Stores a tombstone for an id no invoice holds (migration copies them): true when written,
   * false when the id has a tombstone already (nothing written), already_exists when an invoice
   * holds the id. Checked with checkTombstone.
   */
  addTombstone(tombstone: Tombstone): Promise<boolean>;
  /** The invoice, yanked or not; undefined when absent. */
  get(name: string, version: string): Promise<StoredInvoice | undefined>;
  /**
   * get() and tombstone() in one look-up, for a read whose miss must tell a hard-deleted id
   * (410) from one never created (404): the invoice, yanked or not; when absent, its tombstone
   * (isTombstone tells them apart); undefined when neither exists. A hit is as fresh as get()'s,
   * a miss costs one query, not two.
   */
  lookup(name: string, version: string): Promise<StoredInvoice | Tombstone | undefined>;
  /**
   * Optional: at once, without waiting on I/O, the invoice (yanked or not) that lookup() would
   * resolve to now, when this index holds it in memory and trusts that entry as lookup() would
   * (as fresh as a lookup() hit: its own writes at once, another replica's as its rule says);
   * undefined whenever it cannot say so at once (an invoice it has
   * not cached, a tombstone, an absent id): then lookup() answers. It never returns what lookup()
   * would not, and reads nothing it has not cached. An index without such a cache leaves it out.
   */
  cachedInvoice?(name: string, version: string): StoredInvoice | undefined;
  /**
   * Compare-and-set yank: replaces the invoice's documents by `entry` (the same invoice with
   * `yanked = true` and its yank signature; checkYankEntry) only if it is not yanked yet.
   * true = this call yanked it; false = it was already yanked (nothing written: read it back
   * for the stored yank). not_found if absent. Invoices are immutable otherwise.
   */
  yank(entry: StoredInvoice): Promise<boolean>;
  /** Matches in stable order; invalid_query for a bad version range, offset or limit. */
  query(q: InvoiceQuery): Promise<InvoiceQueryResult>;
  /** Every invoice that lists a parcel with this digest (for "is this parcel on a yanked invoice"). */
  invoicesWithParcel(sha256: string): Promise<Array<{ name: string; version: string; yanked: boolean }>>;
  /**
   * The OCI side (server/storage/oci-records.ts): every insert also writes ociRowsOf(entry) in
   * the same transaction, and those rows never change. An index opened on invoices stored
   * before its OCI tables existed writes their rows from the current TOML (deterministic, so
   * replicas agree; a yanked invoice's manifest then names its yanked TOML).
   *
   * The manifest of `name`/`version` (position 0), yanked or not; undefined when absent.
   */
  ociManifest(name: string, version: string): Promise<OciManifestRecord | undefined>;
  /** The manifest (bindle or signature referrer) of an invoice of `name` with this digest. */
  ociManifestByDigest(name: string, digest: string): Promise<OciManifestRecord | undefined>;
  /** The config blob of an invoice of `name` with this digest (the invoice bytes at create time). */
  ociConfig(name: string, digest: string): Promise<Buffer | undefined>;
  /**
   * Tags of the unyanked invoices of `name` in byte order, those after `last` (when given), at
   * most `n` (a non-negative integer). Undefined when no invoice has this name.
   */
  ociTags(name: string, last: string | undefined, n: number): Promise<OciTagPage | undefined>;
  /** The signature referrers of the bindle manifest `subject` of `name`, in signature order. */
  ociReferrers(name: string, subject: string): Promise<OciManifestRecord[]>;
  /**
   * OCI blob upload sessions (server/storage/oci-uploads.ts). Stores a new session (no chunks,
   * size 0) and, in the same call, removes every session last changed before `expireBefore`
   * (abandoned: their chunks are left to garbage collection). already_exists when the uuid is taken.
   */
  createOciUpload(session: OciUploadSession, expireBefore: number): Promise<void>;
  /** The session with this uuid, whatever its age; undefined when absent (never opened, closed or cancelled). */
  ociUpload(uuid: string): Promise<OciUploadSession | undefined>;
  /**
   * Compare-and-set append: adds `chunk` (checkUploadChunk) at the end of the session's chunks,
   * grows its size by chunk.size and sets updatedAt, only if its size is `offset` now. true = this
   * call appended; false = the session is absent or its size is not `offset` (nothing written):
   * of racing appends at one offset exactly one wins.
   */
  appendOciUpload(uuid: string, offset: number, chunk: OciUploadChunk, updatedAt: number): Promise<boolean>;
  /** Removes the session: true when this call removed it, false when it was absent. */
  deleteOciUpload(uuid: string): Promise<boolean>;
  /**
   * OCI blob links (server/storage/oci-blob-links.ts): blob `link.sha256` is in repository
   * `link.name` (uploaded there, or mounted). Stores the link (checkBlobLink), or, when it exists,
   * moves its linkedAt to the later of the two (never back): racing links of one blob both
   * succeed, and a copy (migration) is idempotent. A link names no invoice: it may exist for a
   * name no invoice has, and for a blob the parcel store does not hold (callers check the store).
   * Rules of the callers (server/service/oci-service.ts, garbage-collect.ts): a link is written
   * only for bytes that were verified (stored, or hashed against the stored blob) or a mount the
   * requester may read, and then the blob's presence is checked again; garbage collection keeps a
   * blob linked within its grace period, and removes a removed blob's links.
   */
  linkOciBlob(link: OciBlobLink): Promise<void>;
  /** True when blob `sha256` is linked in repository `name` (however old the link). */
  ociBlobLinked(name: string, sha256: string): Promise<boolean>;
  /** Every link of blob `sha256`, ordered by name (byte order). */
  ociBlobLinks(sha256: string): Promise<OciBlobLink[]>;
  /**
   * Every link, ordered by sha256 then name (byte order), those after `after` (when given) in
   * that order, at most `n` (a non-negative integer): for migration and garbage collection.
   */
  ociBlobLinkPage(after: { name: string; sha256: string } | undefined, n: number): Promise<OciBlobLink[]>;
  /**
   * Removes the links of blob `sha256` whose linkedAt is at or before `linkedBefore` (a link
   * written later stays); returns how many were removed.
   */
  unlinkOciBlob(sha256: string, linkedBefore: number): Promise<number>;
  /**
   * The repositories for `_catalog`: the distinct names of stored invoices (yanked or not: the
   * names for which a repository exists, as ociTags tells), in byte order, those after `last`
   * (when given), at most `n` (a non-negative integer). Links alone make no repository.
   */
  ociRepositories(last: string | undefined, n: number): Promise<OciRepositoryPage>;
  /** Number of stored invoices, yanked included. */
  count(): Promise<number>;
  /** Releases the index; later calls fail with unavailable. */
  close(): Promise<void>;
}

/** The space-separated terms of a query string (empty for '' or blanks). */
export function queryTerms(query: string): string[] {
  return query.split(/\s+/u).filter((term) => term !== '');
}
