/**
 * What every connection to an invoice index file shares, the index's own and a query worker's:
 * the cap on its page cache, a bounded cache of its prepared statements (better-sqlite3), and
 * read transactions over them.
 */
import type Database from 'better-sqlite3';

/**
 * SQLite's page cache per connection. Every page read stays in it until the cap, so a server
 * whose index grows holds up to this much more memory however little it serves; the pages are
 * also in the OS page cache, from which a miss costs one read. 16 MiB: `/_q` on the bench's
 * 100,000 invoices (a ~530 MB file, most of it OCI records) measured as fast as with 64 MiB, and
 * the resting RSS ~50 MiB lower.
 */
export const PAGE_CACHE_BYTES = 16 * 2 ** 20;

/**
 * A query worker's page cache (sqlite-query-worker.ts). The queries it gets read far more pages
 * than any cache here holds, so it serves them from the OS page cache either way: on the bench's
 * 100,000 invoices, `q=a`, `q=ab`, `q=com` and `q=module` took as long with 4 MiB as with 16
 * (in-process, medians of 5). So a worker may hold 4 MiB of pages, not 16. (The 10-minute soak,
 * whose `q=soak` goes to a worker, rested at the same RSS either way: 1.11x with 16, 1.12x with 4.)
 */
export const QUERY_WORKER_PAGE_CACHE_BYTES = 4 * 2 ** 20;

/** Caps a connection's page cache at `bytes` (default PAGE_CACHE_BYTES). */
export function capPageCache(db: Database.Database, bytes: number = PAGE_CACHE_BYTES): void {
  db.pragma(`cache_size = -${Math.floor(bytes / 1024)}`);
}

/** Distinct statements a cache keeps; query shapes vary with the number of terms. */
const STATEMENT_CACHE_SIZE = 64;

/**
 * Prepared statements of one connection, least recently used dropped first beyond
 * STATEMENT_CACHE_SIZE, and read transactions on it.
 */
export class StatementCache {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  /** `BEGIN` (deferred), the body, `COMMIT` (a savepoint inside a transaction already open). */
  readonly #transaction: (body: () => unknown) => unknown;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#transaction = db.transaction((body: () => unknown) => body());
  }

  /**
   * Runs `body`, which only reads, in one transaction: every statement it runs sees the file as
   * its first statement found it, whatever other connections commit meanwhile (outside a
   * transaction each statement sees the file as of its own start). A thrown error rolls back
   * and propagates.
   */
  reading<T>(body: () => T): T {
    return this.#transaction(body) as T;
  }

  /** The statement for `sql`, returning rows as objects. */
  rows(sql: string): Database.Statement {
    return this.#cached(sql, false);
  }

  /** The statement for `sql`, for a query whose rows are single values (better-sqlite3 pluck mode). */
  values(sql: string): Database.Statement {
    return this.#cached(sql, true);
  }

  /** Forgets every statement (before the connection closes). */
  clear(): void {
    this.#statements.clear();
  }

  #cached(sql: string, pluck: boolean): Database.Statement {
    const key = `${pluck ? 'values' : 'rows'}:${sql}`;
    let stmt = this.#statements.get(key);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      if (pluck) stmt.pluck();
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.#statements.keys().next();
        if (oldest.done !== true) this.#statements.delete(oldest.value);
      }
    } else {
      this.#statements.delete(key);
    }
    this.#statements.set(key, stmt);
    return stmt;
  }
}
