/**
 * What every benchmark case gets: the sizes for this run (full, as the issue states them, or
 * quick), a scratch directory on the disk the servers use, the signing key, the shared seeded
 * index, and a logger. And the shape of a case.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchKeys } from './bindles.js';
import { makeTempDir } from './cleanup.js';
import type { Figure } from './results.js';
import { fastScratchParent, seedIndex } from './seed.js';
import { MiB } from './data.js';
import { SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';

/** Sizes and counts of one run. */
export interface Sizes {
  /** Runs per figure (each figure is their median). */
  runs: number;
  /**
   * Rounds of the upload figures (1-1i): each takes seconds, and the disk's fsync rate drifts by
   * more than their targets' margins within a run, so they get more rounds than the others, an
   * even number so that each contender goes first as often as last (inRoundOrder).
   */
  uploadRuns: number;
  uploadBytes: number;
  /** Seconds of autocannon load per run. */
  loadSeconds: number;
  loadConnections: number;
  indexInvoices: number;
  /** The large `_q` index (its p99 target is looser). */
  largeIndexInvoices: number;
  /** Sequential `/_q` requests per query shape per run. */
  queriesPerRun: number;
  pushParcels: number;
  pushParcelBytes: number;
  kubeletModuleBytes: number;
  rssUploadBytes: number;
  /** Parcels of figure 8c, uploaded MODULE_CONCURRENCY at a time (bench/cases/rss.ts), and their size. */
  moduleUploads: number;
  moduleUploadBytes: number;
  /** Warm (cached) kubelet starts per run (their median is the run's value). */
  warmStartsPerRun: number;
  /** Cold kubelet fetches and plain downloads per run, interleaved (their medians are the run's values). */
  coldFetchesPerRun: number;
}

export const FULL_SIZES: Sizes = {
  runs: 3,
  uploadRuns: 6,
  uploadBytes: 100 * MiB,
  loadSeconds: 5,
  loadConnections: 32,
  indexInvoices: 100_000,
  largeIndexInvoices: 1_000_000,
  queriesPerRun: 300,
  pushParcels: 1000,
  pushParcelBytes: 4096,
  kubeletModuleBytes: 10 * MiB,
  rssUploadBytes: 1024 * MiB,
  moduleUploads: 32,
  moduleUploadBytes: 6 * MiB,
  warmStartsPerRun: 10,
  coldFetchesPerRun: 7,
};

export const QUICK_SIZES: Sizes = {
  runs: 3,
  uploadRuns: 2,
  uploadBytes: 8 * MiB,
  loadSeconds: 1,
  loadConnections: 32,
  indexInvoices: 2000,
  largeIndexInvoices: 20_000,
  queriesPerRun: 30,
  pushParcels: 50,
  pushParcelBytes: 4096,
  kubeletModuleBytes: 1 * MiB,
  rssUploadBytes: 64 * MiB,
  moduleUploads: 8,
  moduleUploadBytes: 1 * MiB,
  warmStartsPerRun: 3,
  coldFetchesPerRun: 2,
};

/** What a case returns: its figures, or why it could not run, and remarks for the report. */
export interface CaseResult {
  figures: Figure[];
  skipped?: string;
  notes?: string[];
}

/** One benchmark, selectable with `--only <name>`. */
export interface BenchCase {
  name: string;
  /** What it measures, for the log. */
  title: string;
  run(ctx: BenchContext): Promise<CaseResult>;
  /** How long (ms) the case may run on one backend before the run is stopped; CASE_TIME_LIMIT_MS when absent. */
  timeLimitMs?: (quick: boolean) => number;
}

/** The default time limit of a case on one backend: past it, the case is taken to hang. */
export const CASE_TIME_LIMIT_MS = 10 * 60 * 1000;

/** How long (ms) `c` may run on `backends` backends before the run is stopped. */
export function caseTimeLimitMs(c: BenchCase, quick: boolean, backends: number): number {
  return (c.timeLimitMs?.(quick) ?? CASE_TIME_LIMIT_MS) * backends;
}

export class BenchContext {
  readonly quick: boolean;
  readonly sizes: Sizes;
  readonly keys: BenchKeys;
  /** Scratch space on the disk (os.tmpdir()); removed at the end of the run. */
  readonly workRoot: string;
  readonly log: (message: string) => void;
  readonly #seeded = new Map<number, Promise<{ path: string; ms: number }>>();

  /** An index file to reuse (seeded there when missing, kept afterwards); for profiling runs. */
  readonly reuseIndex: string | undefined;

  constructor(opts: {
    quick: boolean;
    sizes: Sizes;
    keys: BenchKeys;
    workParent: string;
    log: (message: string) => void;
    reuseIndex?: string;
  }) {
    this.quick = opts.quick;
    this.reuseIndex = opts.reuseIndex;
    this.sizes = opts.sizes;
    this.keys = opts.keys;
    this.workRoot = makeTempDir(opts.workParent, 'bindle-bench-');
    this.log = opts.log;
  }

  /** A fresh directory under the work root. */
  dir(prefix: string): string {
    return makeTempDir(this.workRoot, `${prefix}-`);
  }

  /**
   * The path of an index file seeded with `count` invoices (default `sizes.indexInvoices`;
   * seeded on first use, then shared), and how long seeding took. With --reuse-index <file>
   * the default index is <file> and another count's is <file>-<count>, seeded when missing.
   */
  seededIndex(count = this.sizes.indexInvoices): Promise<{ path: string; ms: number }> {
    let seeded = this.#seeded.get(count);
    if (seeded === undefined) {
      seeded = this.#seed(count);
      this.#seeded.set(count, seeded);
    }
    return seeded;
  }

  async #seed(count: number): Promise<{ path: string; ms: number }> {
    const reuse = this.reuseIndex === undefined || count === this.sizes.indexInvoices ? this.reuseIndex : `${this.reuseIndex}-${count}`;
    if (reuse !== undefined && existsSync(reuse)) {
      const index = SqliteInvoiceIndex.open(reuse);
      const stored = await index.count();
      await index.close();
      if (stored !== count) throw new Error(`${reuse} holds ${stored} invoices, not ${count}: delete it to seed it again`);
      this.log(`reusing the seeded index ${reuse} (${count.toLocaleString('en-US')} invoices)`);
      return { path: reuse, ms: Number.NaN };
    }
    const path = reuse ?? join(makeTempDir(fastScratchParent(this.workRoot), 'bindle-bench-index-'), 'index.sqlite');
    this.log(`seeding ${count.toLocaleString('en-US')} invoices into ${path} (server code: renderInvoice + SqliteInvoiceIndex.insertMany)`);
    const ms = await seedIndex(path, count, (done) => this.log(`  ${done.toLocaleString('en-US')} seeded`));
    if (!existsSync(path)) throw new Error(`seeding did not produce ${path}`);
    this.log(`seeded in ${(ms / 1000).toFixed(1)} s`);
    return { path, ms };
  }
}
