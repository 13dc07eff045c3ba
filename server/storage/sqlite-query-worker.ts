/**
 * The query worker thread: answers `/_q` queries (the total and the page's row ids,
 * SqliteQueryPager) on a read-only connection of its own to the index file, so that a query
 * that reads much of the index (a one-letter term scans every row) never holds the server's
 * event loop. WAL lets it read while the server's own connection writes; each query reads one
 * snapshot that holds every commit made before it started. One connection per file, opened at
 * its first query and closed with the thread.
 */
import Database from 'better-sqlite3';
import { serveJobs } from '../../core/worker-pool.js';
import type { InvoiceQuery } from './invoice-index.js';
import { capPageCache, QUERY_WORKER_PAGE_CACHE_BYTES, StatementCache } from './sqlite-connection.js';
import { registerQueryFunctions, SqliteQueryPager, type QueryPage } from './sqlite-query-pager.js';

/** One query on the index file at `path`. */
export interface QueryJob {
  readonly path: string;
  /** Whether the file's full-text tables are used (as the index that sends the job uses them). */
  readonly fullTextSearch: boolean;
  /** How long a read waits for a lock (ms): only WAL recovery or a checkpoint's restart takes one. */
  readonly busyTimeoutMs: number;
  readonly query: InvoiceQuery;
}

const pagers = new Map<string, SqliteQueryPager>();

function pagerFor(job: QueryJob): SqliteQueryPager {
  let pager = pagers.get(job.path);
  if (pager === undefined) {
    const db = new Database(job.path, { readonly: true, fileMustExist: true, timeout: job.busyTimeoutMs });
    capPageCache(db, QUERY_WORKER_PAGE_CACHE_BYTES);
    registerQueryFunctions(db);
    pager = new SqliteQueryPager(new StatementCache(db), job.fullTextSearch);
    pagers.set(job.path, pager);
  }
  return pager;
}

serveJobs((job: QueryJob): QueryPage => pagerFor(job).page(job.query));
