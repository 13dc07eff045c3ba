/**
 * Invoices as TOML and JSON: parse + schema + name/version rules on the way in, canonical key
 * order (the schema's) with absent fields omitted on the way out.
 */
import type { Condition, Group, Invoice, Label, Parcel, Signature } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';
import { assertValidName, assertValidVersion, type BindleId } from '../ids/bindle-id.js';
import { workerBeside, WorkerPool } from '../worker-pool.js';
import { decodeDocument, parseDocument, parseSyntax, renderDocument, validateDocument, type DocumentFormat } from './document-codec.js';
import type { InvoiceJob } from './invoice-worker.js';

/** Drops undefined fields so that output never carries keys with no value. */
function compact<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v;
  return out as T;
}

export function canonicalLabel(l: Label): Label {
  return compact({
    sha256: l.sha256,
    mediaType: l.mediaType,
    name: l.name,
    size: l.size,
    annotations: l.annotations,
    feature: l.feature,
    origin: l.origin,
  });
}

function canonicalConditions(c: Condition): Condition {
  return compact({ memberOf: c.memberOf, requires: c.requires });
}

function canonicalParcel(p: Parcel): Parcel {
  return compact({
    label: canonicalLabel(p.label),
    conditions: p.conditions === undefined ? undefined : canonicalConditions(p.conditions),
  });
}

function canonicalGroup(g: Group): Group {
  return compact({ name: g.name, required: g.required, satisfiedBy: g.satisfiedBy });
}

export function canonicalSignature(s: Signature): Signature {
  return { by: s.by, signature: s.signature, key: s.key, role: s.role, at: s.at };
}

/** The invoice with the schema's key order and no undefined fields. */
export function canonicalInvoice(inv: Invoice): Invoice {
  return compact({
    bindleVersion: inv.bindleVersion,
    yanked: inv.yanked,
    yankedSignature: inv.yankedSignature?.map(canonicalSignature),
    bindle: compact({
      name: inv.bindle.name,
      version: inv.bindle.version,
      description: inv.bindle.description,
      authors: inv.bindle.authors,
    }),
    annotations: inv.annotations,
    parcel: inv.parcel?.map(canonicalParcel),
    group: inv.group?.map(canonicalGroup),
    signature: inv.signature?.map(canonicalSignature),
  });
}

/** Checks the rules the schema cannot express (name and version grammar). */
export function checkInvoice(inv: Invoice): Invoice {
  assertValidName(inv.bindle.name);
  assertValidVersion(inv.bindle.version);
  return inv;
}

/** Validates an already-parsed value as an invoice. Throws invalid_invoice / invalid_name / invalid_version. */
export function toInvoice(value: unknown): Invoice {
  return checkInvoice(validateDocument('Invoice', value, 'invalid_invoice', 'invoice'));
}

/** Most parcels an invoice request body may list (every real invoice has far fewer). */
export const MAX_PARCELS = 10_000;

/** Throws payload_too_large when a parsed body lists more than MAX_PARCELS parcels. */
function checkParcelCount(value: unknown): unknown {
  const parcels = value !== null && typeof value === 'object' ? (value as { parcel?: unknown }).parcel : undefined;
  if (Array.isArray(parcels) && parcels.length > MAX_PARCELS) {
    throw new BindleError('payload_too_large', `invoice lists ${parcels.length} parcels: more than this server's limit of ${MAX_PARCELS}`);
  }
  return value;
}

/**
 * Parses and validates an invoice. A syntax error is malformed_body; `source` 'body' (a request
 * body) also applies the structure bounds of parseSyntax and at most MAX_PARCELS parcels, both
 * checked before schema validation.
 */
export function parseInvoice(text: string, format: DocumentFormat = 'toml', source: 'file' | 'body' = 'file'): Invoice {
  if (source === 'body') return toInvoice(checkParcelCount(parseSyntax(text, format, { bounded: true })));
  return checkInvoice(parseDocument('Invoice', text, format, 'invalid_invoice', 'invoice'));
}

/** Bodies up to this size are parsed on the calling thread: a worker round trip would cost more. */
export const INLINE_PARSE_BYTES = 64 * 1024;

/** Most large bodies waiting for an invoice worker; one more is refused 503 `unavailable`. */
export const PARSE_QUEUE_LIMIT = 32;

/** Longest a worker may spend on one body before it is terminated (413 `payload_too_large`). */
export const PARSE_TIMEOUT_MS = 10_000;

let invoiceWorkers: WorkerPool<InvoiceJob, Invoice> | undefined;

/**
 * Parses and validates an invoice request body like parseInvoice(…, 'body'), on a worker thread
 * when it is larger than INLINE_PARSE_BYTES, so that a large or hostile body never blocks the
 * event loop. Same results and errors as parsing inline, and two more: `unavailable` (with a
 * retry delay) when PARSE_QUEUE_LIMIT bodies already wait for a worker, `payload_too_large` when
 * the parse runs longer than PARSE_TIMEOUT_MS.
 */
export async function parseInvoiceOffThread(body: Buffer, format: DocumentFormat): Promise<Invoice> {
  const text = decodeDocument(body, format);
  if (body.length <= INLINE_PARSE_BYTES) return parseInvoice(text, format, 'body');
  invoiceWorkers ??= new WorkerPool(workerBeside(import.meta.url, 'invoice-worker'), undefined, {
    maxQueued: PARSE_QUEUE_LIMIT,
    timeoutMs: PARSE_TIMEOUT_MS,
    timeoutError: () => new BindleError('payload_too_large', `invoice body took longer than this server's limit of ${PARSE_TIMEOUT_MS / 1000} s to parse`),
  });
  return invoiceWorkers.run({ text, format });
}

/** Renders an invoice in canonical order. */
export function renderInvoice(inv: Invoice, format: DocumentFormat = 'toml'): string {
  return renderDocument(canonicalInvoice(inv), format);
}

export function invoiceBindleId(inv: Invoice): BindleId {
  return { name: inv.bindle.name, version: inv.bindle.version };
}

/** The parcels of an invoice (empty when it has none). */
export function invoiceParcels(inv: Invoice): Parcel[] {
  return inv.parcel ?? [];
}

/** Finds a parcel's label by digest, or throws parcel_not_on_invoice. */
export function labelOnInvoice(inv: Invoice, sha256: string): Label {
  const parcel = invoiceParcels(inv).find((p) => p.label.sha256 === sha256);
  if (parcel === undefined) {
    throw new BindleError(
      'parcel_not_on_invoice',
      `parcel ${sha256} is not listed on invoice ${inv.bindle.name}/${inv.bindle.version}`,
    );
  }
  return parcel.label;
}
