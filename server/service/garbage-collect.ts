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
 * - OCI blob links (server/storage/oci-blob-links.ts): a parcel linked in some repository less
 *   than `graceMs` ago counts as referenced (a blob pushed, or mounted, before its manifest), in
 *   both look-ups. An upload links a blob only after it verified or stored it and then checks
 *   that it is still stored (server/service/oci-uploads.ts linkVerifiedBlob): a link written
 *   before the second look-up keeps the parcel; one written after it finds the parcel hidden,
 *   and the upload fails (sent again, it stores the parcel anew). An older link keeps nothing.
 * - When a parcel is removed, its links last written before the cutoff go with it (a later one
 *   belongs to an upload that stored the parcel again, or failed). Then links older than the
 *   grace period whose parcel is not stored (left by a failed removal or a mount that lost its
 *   race) are pruned: a blob stored again meanwhile was linked anew, after the cutoff, and stays.
 *   Yanks keep links; a hard delete removes the name's links to the invoice's blobs
 *   (InvoiceIndex.delete), which are then collected like any unreferenced parcel.
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
  /** Parcels no invoice references, stored before the grace period but linked in a repository within it: kept. */
  linked: number;
  /** Parcels removed (dry run: that would be removed), and their bytes. */
  removed: number;
  removedBytes: number;
  /** Candidates an invoice referenced by the time they were hidden: restored. */
  kept: number;
  /** Links of removed parcels, and links older than the grace period of parcels not stored, removed (dry run: that would be). */
  linksRemoved: number;
  /** Parcels that could not be removed (the store or the index failed), with the reason. */
  failures: Array<{ sha256: string; reason: string }>;
}

/** Links read per page when pruning those of parcels not stored. */
const LINK_PAGE = 500;

/** Why a parcel stays: an invoice lists it, or it was linked after `cutoff`; undefined when nothing needs it. */
async function needed(index: InvoiceIndex, sha256: string, cutoff: number): Promise<'referenced' | 'linked' | undefined> {
  if ((await index.invoicesWithParcel(sha256)).length > 0) return 'referenced';
  return (await index.ociBlobLinks(sha256)).some((link) => link.linkedAt > cutoff) ? 'linked' : undefined;
}

/** Removes the links of a removed parcel written at or before `cutoff`; a failure is reported (the links are pruned later). */
async function unlinkRemoved(index: InvoiceIndex, sha256: string, cutoff: number, report: GcReport): Promise<number> {
  try {
    return await index.unlinkOciBlob(sha256, cutoff);
  } catch (err) {
    if (!isBindleError(err) && !(err instanceof Error)) throw err;
    report.failures.push({ sha256, reason: `removed, but not its links: ${err.message}` });
    return 0;
  }
}

/** Removes (dry run: counts) the links last written at or before `cutoff` whose parcel is not stored. */
async function pruneLinks(index: InvoiceIndex, parcels: ParcelStore, cutoff: number, dryRun: boolean, report: GcReport): Promise<void> {
  let after: { name: string; sha256: string } | undefined;
  for (;;) {
    const page = await index.ociBlobLinkPage(after, LINK_PAGE);
    const last = page.at(-1);
    if (last === undefined) return;
    after = { name: last.name, sha256: last.sha256 };
    const old = page.filter((link) => link.linkedAt <= cutoff);
    const absent = await parcels.missing([...new Set(old.map((link) => link.sha256))]);
    for (const sha256 of absent) {
      try {
        report.linksRemoved += dryRun ? old.filter((link) => link.sha256 === sha256).length : await index.unlinkOciBlob(sha256, cutoff);
      } catch (err) {
        if (!isBindleError(err) && !(err instanceof Error)) throw err;
        report.failures.push({ sha256, reason: `its links: ${err.message}` });
      }
    }
    if (page.length < LINK_PAGE) return;
  }
}

/** Runs one collection over the whole store (see the module comment). */
export async function collectGarbage(index: InvoiceIndex, parcels: ParcelStore, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now;
  const dryRun = options.dryRun === true;
  const report: GcReport = { dryRun, scanned: 0, referenced: 0, young: 0, linked: 0, removed: 0, removedBytes: 0, kept: 0, linksRemoved: 0, failures: [] };
  const cutoff = now() - options.graceMs;
  for await (const entry of parcels.entries()) {
    report.scanned++;
    if (entry.storedAt > cutoff) {
      report.young++;
      continue;
    }
    try {
      const why = await needed(index, entry.sha256, cutoff);
      if (why !== undefined) {
        report[why]++;
        continue;
      }
      if (!dryRun) {
        const outcome = await parcels.remove(entry.sha256, async () => (await needed(index, entry.sha256, cutoff)) === undefined);
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
      report.linksRemoved += dryRun ? (await index.ociBlobLinks(entry.sha256)).length : await unlinkRemoved(index, entry.sha256, cutoff, report);
      report.removed++;
      report.removedBytes += entry.size;
      options.onRemoved?.(entry.sha256, entry.size);
    } catch (err) {
      if (!isBindleError(err) && !(err instanceof Error)) throw err;
      report.failures.push({ sha256: entry.sha256, reason: err.message });
    }
  }
  await pruneLinks(index, parcels, cutoff, dryRun, report);
  return report;
}
