/**
 * OCI blob links (README "OCI registry"), as every InvoiceIndex keeps them: a record that a blob
 * was uploaded to, or mounted into, a repository, like the CNCF registry's `_layers` links. A
 * blob is served by a repository when one of its invoices lists it, or when it is linked there,
 * so it can be fetched at its Location right after the upload, before any manifest names it.
 * The link lives in the index, never in a process, so every replica serves it. This module holds
 * the record types and the checks every implementation applies; the rules of the index methods
 * are on InvoiceIndex (invoice-index.ts), those of garbage collection in
 * server/service/garbage-collect.ts.
 */
import { BindleError } from '../../core/errors/bindle-error.js';

/** One link: blob `sha256` is in repository `name`. */
export interface OciBlobLink {
  /** The repository (bindle name). */
  name: string;
  /** Lowercase hex sha256 of the blob (a parcel-store object). */
  sha256: string;
  /** Unix milliseconds of the latest upload or mount that linked it (a re-link moves it forward, never back). */
  linkedAt: number;
}

/** One page of `_catalog`: repository names in byte order after `last`, at most `n`. */
export interface OciRepositoryPage {
  names: string[];
  /** True when names follow the page. */
  more: boolean;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** internal (a caller bug) unless `link` has a name, a lowercase sha256 and a safe-integer time. */
export function checkBlobLink(link: OciBlobLink): void {
  if (link.name === '' || !HEX64.test(link.sha256) || !Number.isSafeInteger(link.linkedAt)) {
    throw new BindleError('internal', `invalid blob link ${JSON.stringify(link)}: a name, a sha256 hex digest and a time in ms`);
  }
}

/** internal unless `n` is a non-negative safe integer (a page size). */
export function checkPageSize(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new BindleError('internal', `invalid page size ${String(n)}`);
}

/** The columns every SQL index keeps per link, as its driver returns them. */
export interface BlobLinkRow {
  name: string;
  sha256: string;
  /** Unix milliseconds; a string where the driver returns 64-bit integers as text. */
  linked_at: number | string;
}

/** The link from a stored row. */
export function blobLinkOf(row: BlobLinkRow): OciBlobLink {
  return { name: row.name, sha256: row.sha256, linkedAt: Number(row.linked_at) };
}
