/**
 * The rules every InvoiceIndex implementation follows (server/storage/invoice-index.ts), shared
 * so that a backend implements storage only: paging limits, query validation, the checks an
 * entry passes before it is written, and the text standard search matches.
 */
import type { Invoice } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { assertValidName, canonicalId, isStrictSemver } from '../../core/ids/bindle-id.js';
import { queryTerms, type InvoiceQuery, type StoredInvoice, type Tombstone } from './invoice-index.js';

/** The largest page a query may ask for. */
export const MAX_LIMIT = 255;

/** invalid_query unless offset is a non-negative safe integer and limit an integer 1–MAX_LIMIT. */
export function checkPaging(q: InvoiceQuery): void {
  if (!Number.isSafeInteger(q.offset) || q.offset < 0) {
    throw new BindleError('invalid_query', `invalid offset ${String(q.offset)}: must be a non-negative integer`);
  }
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > MAX_LIMIT) {
    throw new BindleError('invalid_query', `invalid limit ${String(q.limit)}: must be an integer from 1 to ${MAX_LIMIT}`);
  }
}

/** Checks that an entry is self-consistent before it is written (names, version, id, digests). */
export function checkEntry(entry: StoredInvoice): void {
  assertValidName(entry.name);
  if (!isStrictSemver(entry.version)) {
    throw new BindleError('invalid_version', `invalid bindle version ${JSON.stringify(entry.version)}: must be strict SemVer 2`);
  }
  const spec = entry.invoice.bindle;
  if (spec.name !== entry.name || spec.version !== entry.version) {
    throw new BindleError(
      'invalid_invoice',
      `invoice ${spec.name}/${spec.version} stored as ${entry.name}/${entry.version}: the ids must agree`,
    );
  }
  const expected = canonicalId({ name: entry.name, version: entry.version });
  if (entry.canonicalId !== expected) {
    throw new BindleError(
      'invalid_invoice',
      `canonical id ${JSON.stringify(entry.canonicalId)} of ${entry.name}/${entry.version} should be ${expected}`,
    );
  }
  // Digests follow the schema (lowercase hex): reference data directories hold invoices with
  // shortened test digests, which must still index. The API refuses them at create time.
  for (const parcel of entry.invoice.parcel ?? []) {
    if (!/^[0-9a-f]+$/.test(parcel.label.sha256)) {
      throw new BindleError('invalid_invoice', `parcel digest ${JSON.stringify(parcel.label.sha256)} is not lowercase hex`);
    }
  }
  if (!Number.isSafeInteger(entry.createdAt)) {
    throw new BindleError('invalid_invoice', `createdAt ${String(entry.createdAt)} is not an integer number of milliseconds`);
  }
}

/** Checks a tombstone before it is written: a valid id, its canonical id, an integral time. */
export function checkTombstone(tombstone: Tombstone): void {
  assertValidName(tombstone.name);
  if (!isStrictSemver(tombstone.version)) {
    throw new BindleError('invalid_version', `invalid bindle version ${JSON.stringify(tombstone.version)}: must be strict SemVer 2`);
  }
  if (tombstone.canonicalId !== canonicalId({ name: tombstone.name, version: tombstone.version })) {
    throw new BindleError('internal', `tombstone of ${tombstone.name}/${tombstone.version} with a wrong canonical id`);
  }
  if (!Number.isSafeInteger(tombstone.deletedAt)) {
    throw new BindleError('internal', `tombstone deletedAt ${String(tombstone.deletedAt)} is not an integer number of milliseconds`);
  }
}

/** The refusal of an insert whose name/version was hard-deleted. */
export function deletedError(name: string, version: string): BindleError {
  return new BindleError(
    'deleted',
    `${name}/${version} was deleted by an administrator and cannot be created again unless an administrator allows it (allow_deleted=true)`,
  );
}

/**
 * The refusal of an insert whose entry gives parcel `sha256` `size` bytes while invoice
 * `listed.name`/`listed.version` lists it with `listed.size` (InvoiceIndex.insert).
 */
export function sizeMismatchError(
  entry: { name: string; version: string },
  sha256: string,
  size: number,
  listed: { name: string; version: string; size: number | string },
): BindleError {
  return new BindleError(
    'size_mismatch',
    `invoice ${entry.name}/${entry.version} gives parcel ${sha256} ${size} bytes, but invoice ${listed.name}/${listed.version} lists it with ${String(listed.size)} bytes`,
  );
}

/** The columns every SQL index keeps per tombstone. */
export interface TombstoneColumns {
  name: string;
  version: string;
  canonical_id: string;
  /** Unix milliseconds; a string where the driver returns 64-bit integers as text. */
  deleted_at: number | string;
  record: string;
}

export function tombstoneOf(row: TombstoneColumns): Tombstone {
  return { name: row.name, version: row.version, canonicalId: row.canonical_id, deletedAt: Number(row.deleted_at), record: row.record };
}

/** checkEntry, and the entry must be the yanked form of the invoice (for InvoiceIndex.yank). */
export function checkYankEntry(entry: StoredInvoice): void {
  checkEntry(entry);
  if (!entry.yanked || entry.invoice.yanked !== true) {
    throw new BindleError('internal', `yank of ${entry.name}/${entry.version} with an entry that is not yanked`);
  }
}

/**
 * What standard search matches: the name, version, description and authors, lowercased and
 * joined by newlines (no term holds a newline, so no match spans two fields).
 */
export function searchText(invoice: Invoice): string {
  const spec = invoice.bindle;
  return [spec.name, spec.version, spec.description ?? '', ...(spec.authors ?? [])].join('\n').toLowerCase();
}

/** The column a query's terms are matched in, and the terms as they are matched there. */
export function queryMatch(q: InvoiceQuery): { column: 'name' | 'search_text'; terms: string[] } {
  return q.strict
    ? { column: 'name', terms: queryTerms(q.query) }
    : { column: 'search_text', terms: queryTerms(q.query).map((term) => term.toLowerCase()) };
}

/** A StoredInvoice read from storage; the invoice object is parsed from its JSON on first use. */
class StoredRow implements StoredInvoice {
  name: string;
  version: string;
  canonicalId: string;
  toml: string;
  json: string;
  yanked: boolean;
  createdAt: number;
  #invoice: Invoice | undefined;

  constructor(fields: Omit<StoredInvoice, 'invoice'>) {
    this.name = fields.name;
    this.version = fields.version;
    this.canonicalId = fields.canonicalId;
    this.toml = fields.toml;
    this.json = fields.json;
    this.yanked = fields.yanked;
    this.createdAt = fields.createdAt;
  }

  get invoice(): Invoice {
    this.#invoice ??= JSON.parse(this.json) as Invoice;
    return this.#invoice;
  }

  set invoice(value: Invoice) {
    this.#invoice = value;
  }
}

/** The columns every SQL index keeps per invoice, as its driver returns them. */
export interface InvoiceColumns {
  name: string;
  version: string;
  canonical_id: string;
  /** A boolean, or SQLite's 0/1. */
  yanked: boolean | number;
  /** Unix milliseconds; a string where the driver returns 64-bit integers as text. */
  created_at: number | string;
  toml: string;
  json: string;
}

/**
 * A stored invoice from its row: a GET serves the text only, so the invoice object is parsed
 * from `json` when first read.
 */
export function storedInvoice(row: InvoiceColumns): StoredInvoice {
  return new StoredRow({
    name: row.name,
    version: row.version,
    canonicalId: row.canonical_id,
    toml: row.toml,
    json: row.json,
    yanked: row.yanked === true || row.yanked === 1,
    createdAt: Number(row.created_at),
  });
}
