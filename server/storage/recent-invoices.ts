/**
 * The bounds of the invoice indexes' cache of recently read invoices (the invoice GET path), the
 * same for every implementation: entries, and UTF-16 code units of TOML + JSON. When a cached row
 * may be trusted is each implementation's rule (SQLite: data_version; PostgreSQL: LISTEN).
 */
import { ClockCache } from './clock-cache.js';
import type { StoredInvoice } from './invoice-index.js';

export const RECENT_ROWS = 4096;
export const RECENT_BYTES = 16 * 2 ** 20;

/** The cache's key of an invoice. */
export function recentKey(name: string, version: string): string {
  return `${name}\n${version}`;
}

/** A cache of stored invoices keyed by recentKey; a row larger than RECENT_BYTES is not kept. */
export function recentInvoiceCache(): ClockCache<string, StoredInvoice> {
  return new ClockCache<string, StoredInvoice>({
    maxEntries: RECENT_ROWS,
    maxWeight: RECENT_BYTES,
    weigh: (row) => row.toml.length + row.json.length,
  });
}
