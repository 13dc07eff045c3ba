/**
 * The reference file provider's invoice layout, `<root>/invoices/<canonical id>/invoice.toml`,
 * kept beside the index so that a data directory stays readable by reference tooling and the
 * index can be rebuilt from disk (`reindex`). Every write is atomic.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/fs-atomic.js';

export class InvoiceFiles {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'invoices');
  }

  pathOf(canonicalId: string): string {
    return join(this.dir, canonicalId, 'invoice.toml');
  }

  /** Atomically writes (or replaces) an invoice's TOML. */
  async write(canonicalId: string, toml: string): Promise<void> {
    await writeFileAtomic(this.pathOf(canonicalId), toml, 0o644);
  }

  async remove(canonicalId: string): Promise<void> {
    await rm(join(this.dir, canonicalId), { recursive: true, force: true });
  }

  /** Every stored invoice file as `{ canonicalId, toml }`; directories without one are skipped. */
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
