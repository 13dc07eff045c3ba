/**
 * Imports a data directory in the reference layout (`invoices/<id>/invoice.toml`, e.g. copied
 * from a reference server or written by `bindle-server export`) into the invoice index, which
 * is the only record of invoices. Run on demand (`bindle-server reindex`), never at start-up.
 * Idempotent, and it repairs nothing silently: for an id the index already holds, the file
 * - with the same invoice counts as already indexed;
 * - with the same invoice yanked (the index's copy is not) yanks it in the index (compare-and-set,
 *   the file's yank signature kept): a yank is final, so the later state wins;
 * - with any other difference is reported as a conflict and the index keeps its invoice.
 */
import type { Invoice } from '../../schema/index.js';
import { parseInvoice, renderInvoice, canonicalInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId, formatId } from '../../core/ids/bindle-id.js';
import type { InvoiceFiles } from '../storage/invoice-files.js';
import type { InvoiceIndex, StoredInvoice } from '../storage/invoice-index.js';

export interface ReindexReport {
  added: number;
  alreadyIndexed: number;
  /** Ids the index held unyanked whose file is the same invoice yanked: now yanked in the index. */
  yanked: number;
  /** Ids the index holds with a different invoice than the file: left as the index has them. */
  conflicts: Array<{ path: string; reason: string }>;
  /** Files that could not be used, with the reason. */
  skipped: Array<{ path: string; reason: string }>;
}

/** The invoice without its yank, rendered canonically (what must agree between file and index). */
function unyankedForm(invoice: Invoice): string {
  const { yanked: _yanked, yankedSignature: _signature, ...rest } = invoice;
  return renderInvoice(canonicalInvoice(rest), 'json');
}

function entryOf(invoice: Invoice, id: string, toml: string, createdAt: number): StoredInvoice {
  return {
    name: invoice.bindle.name,
    version: invoice.bindle.version,
    canonicalId: id,
    invoice,
    toml,
    json: renderInvoice(invoice, 'json'),
    yanked: invoice.yanked === true,
    createdAt,
  };
}

export async function reindex(files: InvoiceFiles, index: InvoiceIndex): Promise<ReindexReport> {
  const report: ReindexReport = { added: 0, alreadyIndexed: 0, yanked: 0, conflicts: [], skipped: [] };
  for await (const file of files.readAll()) {
    try {
      const invoice = canonicalInvoice(parseInvoice(file.toml, 'toml'));
      const id = { name: invoice.bindle.name, version: invoice.bindle.version };
      if (canonicalId(id) !== file.canonicalId) {
        report.skipped.push({ path: file.path, reason: `directory name is not sha256("${formatId(id)}")` });
        continue;
      }
      const stored = await index.get(id.name, id.version);
      if (stored === undefined) {
        await index.insert(entryOf(invoice, file.canonicalId, file.toml, Date.now()));
        report.added += 1;
        continue;
      }
      if (unyankedForm(stored.invoice) !== unyankedForm(invoice)) {
        report.conflicts.push({ path: file.path, reason: `the index holds a different invoice ${formatId(id)}; kept the index's` });
      } else if (invoice.yanked === true && !stored.yanked) {
        if (await index.yank(entryOf(invoice, file.canonicalId, file.toml, stored.createdAt))) report.yanked += 1;
        else report.alreadyIndexed += 1;
      } else {
        report.alreadyIndexed += 1;
      }
    } catch (err) {
      report.skipped.push({ path: file.path, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return report;
}
