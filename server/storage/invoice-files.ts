/**
 * The reference file provider's invoice layout, `<root>/invoices/<canonical id>/invoice.toml`:
 * an import/export format only (server/service/reindex.ts, reference-export.ts). The server
 * never reads or writes it while serving: the invoice index is the only record of invoices.
 * Every write is atomic.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/fs-atomic.js';

/** Directory under the root holding one directory per invoice (the reference's name). */
export const INVOICE_DIRECTORY = 'invoices';
/** File name of an invoice inside its directory (the reference's name). */
export const INVOICE_FILE = 'invoice.toml';

export class InvoiceFiles {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, INVOICE_DIRECTORY);
  }

  pathOf(canonicalId: string): string {
    return join(this.dir, canonicalId, INVOICE_FILE);
  }

  /** Atomically writes (or replaces) an invoice's TOML. */
  async write(canonicalId: string, toml: string): Promise<void> {
    await writeFileAtomic(this.pathOf(canonicalId), toml, 0o644);
  }

  /** Every invoice file as `{ canonicalId, path, toml }`, by id; directories without one are skipped. */
  async *readAll(): AsyncGenerator<{ canonicalId: string; path: string; toml: string }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const canonicalId of names.sort()) {
      const path = this.pathOf(canonicalId);
      let toml: string;
      try {
        toml = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
        throw err;
      }
      yield { canonicalId, path, toml };
    }
  }
}
