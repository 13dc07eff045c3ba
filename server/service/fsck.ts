/**
 * The scrub (`bindle-server fsck`): re-hashes every stored parcel and checks the invoice index
 * against the parcel store. Problems: corrupt parcels (data whose sha256 is not its name),
 * parcels whose stored size differs from an invoice's label, and parcels invoices list that are
 * not stored. Orphans (stored, listed by no invoice) are reported but are no problem: garbage
 * collection removes them. `repair` does only what is safe: a corrupt parcel is removed (the
 * data is wrong whatever it was; its invoices then report it missing, and a re-upload restores
 * it). Nothing else is ever changed; a good parcel is never touched.
 */
import { createHash } from 'node:crypto';
import { isBindleError } from '../../core/errors/bindle-error.js';
import type { AuditLogger } from '../audit/audit-log.js';
import { writeAudit } from '../audit/audit-log.js';
import { MAX_LIMIT } from '../storage/invoice-index-rules.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { ParcelStore } from '../storage/parcel-store.js';

export interface FsckOptions {
  /** Remove corrupt parcels. */
  repair?: boolean;
  /** Audit records of repairs go here. */
  audit?: AuditLogger;
}

/** Which invoices (`name/version`) list a parcel, and with which label sizes. */
interface Listing {
  invoices: string[];
  sizes: Set<number>;
}

export interface FsckReport {
  invoices: number;
  parcels: number;
  bytes: number;
  /** Stored data whose sha256 is not the parcel's. */
  corrupt: Array<{ sha256: string; actualSha256: string; invoices: string[] }>;
  /** A stored parcel whose size is not the size an invoice's label gives. */
  sizeMismatches: Array<{ sha256: string; storedSize: number; labelSizes: number[]; invoices: string[] }>;
  /** Parcels invoices list that are not stored. */
  missing: Array<{ sha256: string; invoices: string[] }>;
  /** Stored parcels no invoice lists (garbage collection removes them). */
  orphans: string[];
  /** Corrupt parcels removed by repair. */
  repaired: string[];
  /** Parcels that could not be read or repaired, with the reason. */
  failures: Array<{ sha256: string; reason: string }>;
}

/** True when the report holds a problem (orphans are none). */
export function hasProblems(report: FsckReport): boolean {
  return report.corrupt.length + report.sizeMismatches.length + report.missing.length + report.failures.length > 0;
}

/** Every invoice's parcels, yanked invoices included, paging through the index. */
async function listings(index: InvoiceIndex): Promise<{ invoices: number; bySha: Map<string, Listing> }> {
  const bySha = new Map<string, Listing>();
  let invoices = 0;
  for (let offset = 0; ; offset += MAX_LIMIT) {
    const page = await index.query({ query: '', offset, limit: MAX_LIMIT, strict: false, yanked: true });
    for (const stored of page.invoices) {
      invoices++;
      for (const parcel of stored.invoice.parcel ?? []) {
        const listing = bySha.get(parcel.label.sha256) ?? { invoices: [], sizes: new Set<number>() };
        const id = `${stored.name}/${stored.version}`;
        if (!listing.invoices.includes(id)) listing.invoices.push(id);
        listing.sizes.add(parcel.label.size);
        bySha.set(parcel.label.sha256, listing);
      }
    }
    if (page.invoices.length < MAX_LIMIT) return { invoices, bySha };
  }
}

async function sha256Of(parcels: ParcelStore, sha256: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of await parcels.openRead(sha256)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Runs the scrub (see the module comment). */
export async function fsck(index: InvoiceIndex, parcels: ParcelStore, options: FsckOptions = {}): Promise<FsckReport> {
  const { invoices, bySha } = await listings(index);
  const report: FsckReport = {
    invoices, parcels: 0, bytes: 0, corrupt: [], sizeMismatches: [], missing: [], orphans: [], repaired: [], failures: [],
  };
  const stored = new Set<string>();
  for await (const entry of parcels.entries()) {
    stored.add(entry.sha256);
    report.parcels++;
    report.bytes += entry.size;
    const listing = bySha.get(entry.sha256);
    const listedBy = listing?.invoices ?? [];
    try {
      const actual = await sha256Of(parcels, entry.sha256);
      if (actual !== entry.sha256) {
        report.corrupt.push({ sha256: entry.sha256, actualSha256: actual, invoices: listedBy });
        if (options.repair === true && (await parcels.remove(entry.sha256, () => Promise.resolve(true))) === 'removed') {
          report.repaired.push(entry.sha256);
          if (options.audit !== undefined) {
            writeAudit(options.audit, { principal: null, action: 'fsck-remove', bindle: null, parcel: entry.sha256, outcome: 'success', status: 0 });
          }
        }
        continue;
      }
    } catch (err) {
      if (!isBindleError(err) && !(err instanceof Error)) throw err;
      report.failures.push({ sha256: entry.sha256, reason: err.message });
      continue;
    }
    if (listing === undefined) {
      report.orphans.push(entry.sha256);
    } else if ([...listing.sizes].some((size) => size !== entry.size)) {
      report.sizeMismatches.push({ sha256: entry.sha256, storedSize: entry.size, labelSizes: [...listing.sizes], invoices: listedBy });
    }
  }
  for (const [sha256, listing] of bySha) {
    if (!stored.has(sha256)) report.missing.push({ sha256, invoices: listing.invoices });
  }
  return report;
}
