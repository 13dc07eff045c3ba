/**
 * Rebuilds the invoice index from the invoice files on disk (the reference layout), e.g. after
 * copying in a reference data directory or restoring a backup. Run on demand, never at start-up.
 */
import { parseInvoice, renderInvoice, canonicalInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId, formatId } from '../../core/ids/bindle-id.js';
import type { InvoiceFiles } from '../storage/invoice-files.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';

export interface ReindexReport {
  added: number;
  alreadyIndexed: number;
  /** Files that could not be used, with the reason. */
  skipped: Array<{ path: string; reason: string }>;
}

export async function reindex(files: InvoiceFiles, index: InvoiceIndex): Promise<ReindexReport> {
  const report: ReindexReport = { added: 0, alreadyIndexed: 0, skipped: [] };
  for await (const file of files.readAll()) {
    try {
      const invoice = canonicalInvoice(parseInvoice(file.toml, 'toml'));
      const id = { name: invoice.bindle.name, version: invoice.bindle.version };
      if (canonicalId(id) !== file.canonicalId) {
        report.skipped.push({ path: file.path, reason: `directory name is not sha256("${formatId(id)}")` });
        continue;
      }
      if ((await index.get(id.name, id.version)) !== undefined) {
        report.alreadyIndexed += 1;
        continue;
      }
      await index.insert({
        name: id.name,
        version: id.version,
        canonicalId: file.canonicalId,
        invoice,
        toml: file.toml,
        json: renderInvoice(invoice, 'json'),
        yanked: invoice.yanked === true,
        createdAt: Date.now(),
      });
      report.added += 1;
    } catch (err) {
      report.skipped.push({ path: file.path, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return report;
}
