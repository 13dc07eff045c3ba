/**
 * Copies one server's data into other storage (`bindle-server migrate`), e.g. from a single node
 * (SQLite + files) to a shared deployment: every parcel, then every invoice with its exact bytes,
 * signatures and yank state, then every tombstone of a hard delete (so the destination refuses
 * those ids too), then every OCI blob link with its time (so the destination's repositories
 * serve the blobs pushed to them, and its garbage collection keeps young ones as the source's
 * would). Written only against the ParcelStore and InvoiceIndex interfaces. Upload sessions are
 * not copied: clients start those again.
 * Resumable and idempotent: what the destination already holds is skipped (a stored parcel is
 * complete and verified by the ParcelStore contract), so a second run copies nothing. Parcels go
 * first, so no invoice appears at the destination before its parcels.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import type { InvoiceIndex, StoredInvoice } from '../storage/invoice-index.js';
import type { ParcelStore } from '../storage/parcel-store.js';
import { storedOciArtifact } from '../storage/oci-records.js';

/** One side of a migration. */
export interface MigrationEnd {
  readonly index: InvoiceIndex;
  readonly parcels: ParcelStore;
}

/** What a migration did. */
export interface MigrationReport {
  parcelsCopied: number;
  parcelsPresent: number;
  bytesCopied: number;
  invoicesCopied: number;
  /** Invoices present at the destination unyanked and yanked at the source: yank copied. */
  invoicesYanked: number;
  invoicesPresent: number;
  /** Tombstones copied, and already at the destination. */
  tombstonesCopied: number;
  tombstonesPresent: number;
  /** OCI blob links copied, and already at the destination (a present one's time moves to the later of the two). */
  linksCopied: number;
  linksPresent: number;
  /** Items that could not be copied, with the reason; a non-empty list means "run again after fixing". */
  failures: Array<{ item: string; reason: string }>;
}

export interface MigrateOptions {
  /** Parcels copied at once (default 4). */
  readonly concurrency?: number;
  /** Told about every item as it is settled (for progress output). */
  readonly onProgress?: (event: { kind: 'parcel' | 'invoice' | 'tombstone' | 'link'; item: string; outcome: 'copied' | 'present' | 'yanked' | 'failed' }) => void;
}

/** The query's page size limit (InvoiceQuery.limit is at most 255). */
const PAGE = 255;

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

type ItemKind = 'invoice' | 'tombstone' | 'link';
type Outcome = 'copied' | 'present' | 'yanked';

/**
 * Settles one invoice, tombstone or link: `copy` copies it and says how it went, `count` adds
 * that to the report; a failure is listed in the report, never thrown. Tells onProgress either way.
 */
async function settle(kind: ItemKind, item: string, report: MigrationReport, opts: MigrateOptions, count: (outcome: Outcome) => void, copy: () => Promise<Outcome>): Promise<void> {
  try {
    const outcome = await copy();
    count(outcome);
    opts.onProgress?.({ kind, item, outcome });
  } catch (err) {
    report.failures.push({ item, reason: reasonOf(err) });
    opts.onProgress?.({ kind, item, outcome: 'failed' });
  }
}

/** Copies everything in `from` that `to` lacks; see the module comment. */
export async function migrate(from: MigrationEnd, to: MigrationEnd, opts: MigrateOptions = {}): Promise<MigrationReport> {
  const report: MigrationReport = {
    parcelsCopied: 0, parcelsPresent: 0, bytesCopied: 0,
    invoicesCopied: 0, invoicesYanked: 0, invoicesPresent: 0, tombstonesCopied: 0, tombstonesPresent: 0,
    linksCopied: 0, linksPresent: 0, failures: [],
  };
  await copyParcels(from.parcels, to.parcels, report, opts);
  await copyInvoices(from.index, to.index, report, opts);
  await copyTombstones(from.index, to.index, report, opts);
  await copyBlobLinks(from.index, to.index, report, opts);
  return report;
}

/** Copies every OCI blob link (InvoiceIndex.linkOciBlob keeps the later time: idempotent), in keyset pages. */
async function copyBlobLinks(from: InvoiceIndex, to: InvoiceIndex, report: MigrationReport, opts: MigrateOptions): Promise<void> {
  let after: { name: string; sha256: string } | undefined;
  for (;;) {
    const page = await from.ociBlobLinkPage(after, PAGE);
    for (const link of page) {
      const count = (outcome: Outcome): void => {
        if (outcome === 'present') report.linksPresent += 1;
        else report.linksCopied += 1;
      };
      await settle('link', `${link.name}@sha256:${link.sha256}`, report, opts, count, async () => {
        const present = await to.ociBlobLinked(link.name, link.sha256);
        await to.linkOciBlob(link);
        return present ? 'present' : 'copied';
      });
    }
    const last = page.at(-1);
    if (last === undefined || page.length < PAGE) return;
    after = { name: last.name, sha256: last.sha256 };
  }
}

async function copyTombstones(from: InvoiceIndex, to: InvoiceIndex, report: MigrationReport, opts: MigrateOptions): Promise<void> {
  for (const tombstone of await from.tombstones()) {
    const count = (outcome: Outcome): void => {
      if (outcome === 'present') report.tombstonesPresent += 1;
      else report.tombstonesCopied += 1;
    };
    await settle('tombstone', `tombstone ${tombstone.name}/${tombstone.version}`, report, opts, count, async () =>
      (await to.addTombstone(tombstone)) ? 'copied' : 'present',
    );
  }
}

async function copyParcels(from: ParcelStore, to: ParcelStore, report: MigrationReport, opts: MigrateOptions): Promise<void> {
  const copyOne = async (sha256: string): Promise<void> => {
    try {
      if (await to.has(sha256)) {
        report.parcelsPresent += 1;
        opts.onProgress?.({ kind: 'parcel', item: sha256, outcome: 'present' });
        return;
      }
      const stat = await from.stat(sha256);
      if (stat === undefined) throw new BindleError('not_found', 'listed by the source but no longer stored there');
      const data = await from.openRead(sha256);
      try {
        // put() hashes the bytes and refuses them unless they match the digest and size.
        await to.put(sha256, stat.size, data);
      } catch (err) {
        data.destroy();
        if (!(err instanceof BindleError && err.code === 'already_exists')) throw err;
      }
      report.parcelsCopied += 1;
      report.bytesCopied += stat.size;
      opts.onProgress?.({ kind: 'parcel', item: sha256, outcome: 'copied' });
    } catch (err) {
      report.failures.push({ item: `parcel ${sha256}`, reason: reasonOf(err) });
      opts.onProgress?.({ kind: 'parcel', item: sha256, outcome: 'failed' });
    }
  };
  const running = new Set<Promise<void>>();
  const limit = Math.max(1, opts.concurrency ?? 4);
  for await (const sha256 of from.list()) {
    const job: Promise<void> = copyOne(sha256).finally(() => running.delete(job));
    running.add(job);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
}

async function copyInvoices(from: InvoiceIndex, to: InvoiceIndex, report: MigrationReport, opts: MigrateOptions): Promise<void> {
  const total = await from.count();
  // The source is not written during a migration, so offset paging sees every invoice once;
  // the bound guards against a source that keeps growing.
  for (let offset = 0; offset < total; offset += PAGE) {
    const page = await from.query({ query: '', offset, limit: PAGE, strict: false, yanked: true });
    if (page.invoices.length === 0) break;
    for (const entry of page.invoices) {
      const count = (outcome: Outcome): void => {
        if (outcome === 'copied') report.invoicesCopied += 1;
        else if (outcome === 'yanked') report.invoicesYanked += 1;
        else report.invoicesPresent += 1;
      };
      await settle('invoice', `invoice ${entry.name}/${entry.version}`, report, opts, count, () => copyInvoice(entry, from, to));
    }
  }
}

async function copyInvoice(entry: StoredInvoice, from: InvoiceIndex, to: InvoiceIndex): Promise<'copied' | 'yanked' | 'present'> {
  let existing = await to.get(entry.name, entry.version);
  if (existing === undefined) {
    try {
      // Its OCI manifest and config as they are, so that their digests stay (a yanked or pushed one is not rebuilt from its TOML).
      const oci = await storedOciArtifact(from, entry.name, entry.version);
      // (Fields one by one: a stored entry reads its invoice through a getter, which a spread would drop.)
      await to.insert(oci === undefined ? entry : {
        name: entry.name, version: entry.version, canonicalId: entry.canonicalId, invoice: entry.invoice,
        toml: entry.toml, json: entry.json, yanked: entry.yanked, createdAt: entry.createdAt, oci,
      });
      return 'copied';
    } catch (err) {
      if (!(err instanceof BindleError && err.code === 'already_exists')) throw err;
    }
    // Someone else inserted it meanwhile: compare with what is there now.
    existing = await to.get(entry.name, entry.version);
    if (existing === undefined) throw new BindleError('unavailable', 'the destination reported it both present and absent');
  }
  if (existing.toml === entry.toml) return 'present';
  if (entry.yanked && !existing.yanked && sameBindle(existing, entry)) {
    // Compare-and-set: false means another writer yanked it meanwhile, which is the same outcome.
    await to.yank(entry);
    return 'yanked';
  }
  throw new BindleError(
    'already_exists',
    existing.yanked && !entry.yanked
      ? 'yanked at the destination but not at the source; left as it is'
      : 'the destination holds a different invoice under this name and version; left as it is',
  );
}

/** True when `yanked` is `unyanked` plus a yank: same signatures and parcels, only the yank fields differ. */
function sameBindle(unyanked: StoredInvoice, yanked: StoredInvoice): boolean {
  const strip = (s: StoredInvoice): string => {
    const { yanked: _y, yankedSignature: _ys, ...rest } = s.invoice;
    return JSON.stringify(rest);
  };
  return strip(unyanked) === strip(yanked);
}
