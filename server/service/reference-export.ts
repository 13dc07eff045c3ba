/**
 * `bindle-server export --reference-layout DIR`: writes every invoice in the index, yanked ones
 * included, and every stored parcel they list into DIR in the reference file provider's layout
 * (`invoices/<id>/invoice.toml`, `parcels/<sha256>/parcel.dat` + `label.toml`), which reference
 * tooling reads and `bindle-server reindex` imports. Every file is written atomically; a parcel
 * already in DIR with the right size is kept, so an interrupted export can be run again. Each
 * parcel is re-hashed as it is copied: one whose stored bytes are not its digest (what `fsck`
 * reports) is not written, and is reported. The invoices are read page by page: invoices created
 * while it runs may be left out.
 */
import { createHash, type Hash } from 'node:crypto';
import { rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Label } from '../../schema/index.js';
import { renderDocument } from '../../core/codec/document-codec.js';
import { writeFileAtomic, writeTempFile } from '../../core/fs-atomic.js';
import { InvoiceFiles } from '../storage/invoice-files.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import { MAX_LIMIT } from '../storage/invoice-index-rules.js';
import type { ParcelStore } from '../storage/parcel-store.js';
import { PARCEL_DATA_FILE, PARCEL_DIRECTORY } from '../storage/file-parcel-store.js';

export interface ExportReport {
  invoices: number;
  /** Parcels written (or already present in DIR). */
  parcels: number;
  /** Parcels listed on an invoice but never uploaded (nothing to write). */
  missingParcels: number;
  /** Stored parcels whose bytes are not their digest or size (not written; `fsck --repair` removes them). */
  corruptParcels: string[];
}

/** `source`'s bytes as they pass, hashed and counted. */
async function* hashing(source: AsyncIterable<Uint8Array>, into: { hash: Hash; size: number }): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    into.hash.update(chunk);
    into.size += chunk.length;
    yield chunk;
  }
}

/** The reference keeps each parcel's label beside its data. */
const LABEL_FILE = 'label.toml';

async function hasSize(path: string, size: number): Promise<boolean> {
  try {
    return (await stat(path)).size === size;
  } catch {
    return false;
  }
}

export async function exportReferenceLayout(index: InvoiceIndex, parcels: ParcelStore, dir: string): Promise<ExportReport> {
  const files = new InvoiceFiles(dir);
  const report: ExportReport = { invoices: 0, parcels: 0, missingParcels: 0, corruptParcels: [] };
  const labels = new Map<string, Label>();
  for (let offset = 0; ; offset += MAX_LIMIT) {
    const page = await index.query({ query: '', offset, limit: MAX_LIMIT, strict: true, yanked: true });
    for (const stored of page.invoices) {
      await files.write(stored.canonicalId, stored.toml);
      report.invoices += 1;
      for (const parcel of stored.invoice.parcel ?? []) labels.set(parcel.label.sha256, parcel.label);
    }
    if (page.invoices.length < MAX_LIMIT) break;
  }
  for (const [sha256, label] of labels) {
    const stored = /^[0-9a-f]{64}$/.test(sha256) ? await parcels.stat(sha256) : undefined;
    if (stored === undefined) {
      report.missingParcels += 1;
      continue;
    }
    const parcelDir = join(dir, PARCEL_DIRECTORY, sha256);
    const target = join(parcelDir, PARCEL_DATA_FILE);
    if (!(await hasSize(target, stored.size))) {
      const read = { hash: createHash('sha256'), size: 0 };
      const temp = await writeTempFile(target, hashing(await parcels.openRead(sha256), read), 0o444);
      if (read.size !== stored.size || read.hash.digest('hex') !== sha256) {
        await rm(temp, { force: true });
        // The parcel's directory, made for the temp file, goes too unless an earlier export filled it.
        await rmdir(parcelDir).catch(() => undefined);
        report.corruptParcels.push(sha256);
        continue;
      }
      try {
        await rename(temp, target);
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
    }
    await writeFileAtomic(join(parcelDir, LABEL_FILE), renderDocument(label, 'toml'), 0o644);
    report.parcels += 1;
  }
  return report;
}
