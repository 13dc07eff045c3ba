/**
 * A large invoice index, seeded quickly with the server's own code: invoices rendered with
 * renderInvoice and inserted with the index's bulk insert (insertMany). SQLite: into an index
 * file (on tmpfs when there is one, where the per-commit fsync costs nothing), then copied into a
 * server's data directory as `index.sqlite`, the only record of invoices the server reads.
 * PostgreSQL: straight into the server's database (PostgresInvoiceIndex.insertMany).
 */
import { copyFileSync, existsSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Invoice } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { INDEX_FILE } from '../../server/server-runtime.js';
import type { StoredInvoice } from '../../server/storage/invoice-index.js';
import { SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';
import { sha256Hex } from './data.js';

/** Syllables of the generated vocabulary: 16 consonants × 5 vowels. */
const CONSONANTS = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z', 'h', 'j'];
const SYLLABLES = CONSONANTS.flatMap((c) => ['a', 'e', 'i', 'o', 'u'].map((v) => c + v));
/** Words used in names and descriptions (a realistic spread of trigrams, unlike a short word list). */
export const VOCABULARY = 4000;
const ORGS = 400;
const TLDS = ['io', 'com', 'dev', 'org'] as const;
/** Every bindle name has this many versions. */
export const VERSIONS_PER_NAME = 5;

/** A well-mixed 32-bit hash of an integer (so that neighbouring bindles share no words). */
export function mix(n: number, salt: number): number {
  let h = Math.imul((n + 1) ^ Math.imul(salt, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Word i of the vocabulary: two or three syllables, e.g. "kotu", "zabire" (distinct for every i). */
export function word(i: number): string {
  const w = i % VOCABULARY;
  const n = SYLLABLES.length;
  const s = (k: number): string => SYLLABLES[k % n] ?? 'x';
  const h = mix(w, 10);
  return s(w) + s(Math.floor(w / n)) + (h % 2 === 1 ? s(h >>> 1) : '');
}

/** The organisation (domain) of seeded bindle n, e.g. "tebu.dev". */
export function seededOrg(n: number): string {
  const o = mix(n, 1) % ORGS;
  return `${word(mix(o, 2))}.${TLDS[o % TLDS.length] ?? 'io'}`;
}

/** The application part of seeded bindle n's name, e.g. "kotu-zabire". */
export function seededApp(n: number): string {
  return `${word(mix(n, 3))}-${word(mix(n, 4))}`;
}

/** The name of seeded bindle n: `<org>/<app>/<n>`. */
export function seededName(n: number): string {
  return `${seededOrg(n)}/${seededApp(n)}/${n}`;
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Seeded invoice i: name i / 5, one of 5 versions (one a prerelease); every 50th is yanked. */
export function seededInvoice(i: number): StoredInvoice {
  const n = Math.floor(i / VERSIONS_PER_NAME);
  const v = i % VERSIONS_PER_NAME;
  const name = seededName(n);
  const version = v === 4 ? `${1 + (n % 3)}.${v}.0-rc.${n % 4}` : `${1 + (n % 3)}.${v * 3}.${n % 11}`;
  const invoice: Invoice = {
    bindleVersion: '1.0.0',
    bindle: {
      name,
      version,
      description: `The ${word(mix(n, 5))} ${word(mix(n, 6))} module for ${word(mix(n, 7))} systems`,
      authors: [`${capitalised(word(mix(n % 100, 8)))} ${capitalised(word(mix(n % 100, 9)))}`],
    },
    parcel: [0, 1, 2].map((j) => ({
      label: { sha256: sha256Hex(`${i}/${j}`), mediaType: 'application/wasm', name: `part-${j}.wasm`, size: 1000 + j },
    })),
  };
  if (i % 50 === 0) invoice.yanked = true;
  return {
    name,
    version,
    canonicalId: canonicalId({ name, version }),
    invoice,
    toml: renderInvoice(invoice, 'toml'),
    json: renderInvoice(invoice, 'json'),
    yanked: invoice.yanked === true,
    createdAt: Date.now(),
  };
}

/** A directory for the seeded index: /dev/shm when it has 2 GiB free, else `fallback`. */
export function fastScratchParent(fallback: string): string {
  try {
    if (existsSync('/dev/shm')) {
      const fs = statfsSync('/dev/shm');
      if (fs.bavail * fs.bsize > 2 * 2 ** 30) return '/dev/shm';
    }
  } catch {
    // no tmpfs: use the fallback
  }
  return fallback;
}

/** Invoices per transaction when seeding: one commit each, and a bounded batch in memory. */
const SEED_BATCH = 5000;

/** Where seeded invoices go: an index with a bulk insert (SqliteInvoiceIndex, PostgresInvoiceIndex). */
export interface BulkLoader {
  insertMany(entries: readonly StoredInvoice[]): Promise<void>;
  /**
   * What the index does after a bulk load, when it has it: SqliteInvoiceIndex merges its
   * full-text index as far as a live server's background merging would (not into one segment,
   * which a server fed one invoice at a time never is).
   */
  mergeFullText?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Seeds `count` invoices into `index` with its bulk insert (SEED_BATCH per transaction), merges
 * its full-text index when it has one, then closes it; resolves with the time taken in ms.
 */
export async function seedInto(index: BulkLoader, count: number, progress?: (done: number) => void): Promise<number> {
  const started = performance.now();
  try {
    for (let first = 0; first < count; first += SEED_BATCH) {
      const batch = Array.from({ length: Math.min(SEED_BATCH, count - first) }, (_, j) => seededInvoice(first + j));
      await index.insertMany(batch);
      const done = first + batch.length;
      if (progress !== undefined && (done % 50_000 === 0 || done === count)) progress(done);
    }
    await index.mergeFullText?.();
  } finally {
    await index.close();
  }
  return performance.now() - started;
}

/** Seeds `count` invoices into a new SQLite index file at `path` (seedInto); resolves with the time taken in ms. */
export function seedIndex(path: string, count: number, progress?: (done: number) => void): Promise<number> {
  return seedInto(SqliteInvoiceIndex.open(path, { backgroundMerge: false }), count, progress);
}

/** Copies a seeded (closed, checkpointed) index file into a server data directory. */
export function installIndex(seededPath: string, dataDir: string): void {
  copyFileSync(seededPath, join(dataDir, INDEX_FILE));
  if (existsSync(`${seededPath}-wal`)) copyFileSync(`${seededPath}-wal`, join(dataDir, `${INDEX_FILE}-wal`));
}
