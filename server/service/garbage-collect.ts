/**
 * Garbage collection of parcels: removes the parcels no invoice references (after hard deletes,
 * or uploads whose invoice never came), safely while the server runs, in any number of replicas:
 * - a parcel stored less than `graceMs` ago is never a candidate (an upload for an invoice not
 *   created yet, e.g. a blob pushed before its manifest);
 * - a candidate's references are looked up in the invoice index, then the parcel store hides it
 *   (ParcelStore.remove) and the references are looked up AGAIN before the data is removed; if
 *   an invoice appeared meanwhile the parcel is restored. An invoice create that found the
 *   parcel present did so before it was hidden, so after its insert, so the second look-up sees
 *   it; one that ran while it was hidden was told the parcel is missing, and its client uploads it.
 * The index is the only record consulted, never this process's memory.
 */
import { isBindleError } from '../../core/errors/bindle-error.js';
import type { AuditLogger } from '../audit/audit-log.js';
import { writeAudit } from '../audit/audit-log.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { ParcelStore } from '../storage/parcel-store.js';

export interface GcOptions {
  /** Only parcels stored at least this long ago (ms) are removed. */
  graceMs: number;
  /** Report what would be removed; remove nothing. */
  dryRun?: boolean;
  /** Unix ms; injectable for tests. */
  now?: () => number;
  /** Audit records of removals go here (one per removed parcel). */
  audit?: AuditLogger;
  /** Called for every removed (or, dry run, removable) parcel. */
  onRemoved?: (sha256: string, size: number) => void;
}

export interface GcReport {
  dryRun: boolean;
  /** Parcels looked at. */
  scanned: number;
  /** Parcels some invoice references. */
  referenced: number;
  /** Unreferenced parcels stored within the grace period. */
  young: number;
  /** Parcels removed (dry run: that would be removed), and their bytes. */
  removed: number;
  removedBytes: number;
  /** Candidates an invoice referenced by the time they were hidden: restored. */
  kept: number;
  /** Parcels that could not be removed (the store or the index failed), with the reason. */
  failures: Array<{ sha256: string; reason: string }>;
}

async function unreferenced(index: InvoiceIndex, sha256: string): Promise<boolean> {
  return (await index.invoicesWithParcel(sha256)).length === 0;
}

/** Runs one collection over the whole store (see the module comment). */
export async function collectGarbage(index: InvoiceIndex, parcels: ParcelStore, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now;
  const dryRun = options.dryRun === true;
  const report: GcReport = { dryRun, scanned: 0, referenced: 0, young: 0, removed: 0, removedBytes: 0, kept: 0, failures: [] };
  const cutoff = now() - options.graceMs;
  for await (const entry of parcels.entries()) {
    report.scanned++;
    if (entry.storedAt > cutoff) {
      report.young++;
      continue;
    }
    try {
      if (!(await unreferenced(index, entry.sha256))) {
        report.referenced++;
        continue;
      }
      if (!dryRun) {
        const outcome = await parcels.remove(entry.sha256, () => unreferenced(index, entry.sha256));
        if (outcome === 'kept') {
          report.kept++;
          continue;
        }
        // absent: another collector (replica) removed it first.
        if (outcome === 'absent') continue;
        if (options.audit !== undefined) {
          writeAudit(options.audit, { principal: null, action: 'gc-remove', bindle: null, parcel: entry.sha256, outcome: 'success', status: 0 });
        }
      }
      report.removed++;
      report.removedBytes += entry.size;
      options.onRemoved?.(entry.sha256, entry.size);
    } catch (err) {
      if (!isBindleError(err) && !(err instanceof Error)) throw err;
      report.failures.push({ sha256: entry.sha256, reason: err.message });
    }
  }
  return report;
}
