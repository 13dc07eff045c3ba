/**
 * The invoice index in one SQLite file (better-sqlite3): schema and its migrations, atomic
 * writes, the FTS5 trigram tables that `/_q` looks terms up in (over the distinct bindle names
 * and the rest of each invoice's search text, their segments merged in the background after
 * writes), and `/_q` queries: matched by sqlite-query-pager.ts, on this connection or on a
 * query worker thread's (sqlite-query-worker.ts), the page's documents read here.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BindleError } from '../../core/errors/bindle-error.js';
import { workerBeside, WorkerPool } from '../../core/worker-pool.js';
import type { InsertOptions, InvoiceIndex, InvoiceQuery, InvoiceQueryResult, StoredInvoice, Tombstone } from './invoice-index.js';
import { OCI_MANIFEST_SELECT, ociManifestRecord, ociRowsOf, type OciManifestColumns, type OciManifestRecord, type OciTagPage } from './oci-records.js';
import { checkUploadChunk, uploadSessionOf, type OciUploadChunk, type OciUploadSession } from './oci-uploads.js';
import { blobLinkOf, checkBlobLink, checkPageSize, type BlobLinkRow, type OciBlobLink, type OciRepositoryPage } from './oci-blob-links.js';
import { recentInvoiceCache, recentKey } from './recent-invoices.js';
import {
  checkEntry, checkPaging, checkTombstone, checkYankEntry, deletedError, searchText, sizeMismatchError, storedInvoice, tombstoneOf,
  type TombstoneColumns,
} from './invoice-index-rules.js';
import { versionParts } from './semver-order.js';
import { capPageCache, StatementCache } from './sqlite-connection.js';
import { registerQueryFunctions, SqliteQueryPager, type QueryPage } from './sqlite-query-pager.js';
import type { QueryJob } from './sqlite-query-worker.js';

/** How SqliteInvoiceIndex.open sets up the file. */
export interface SqliteInvoiceIndexOptions {
  /**
   * Use the FTS5 trigram index for terms of 3 or more characters (default true, when the
   * bundled SQLite has FTS5). false = every term is matched by scanning (the fallback path).
   * A file that already has the full-text table cannot be opened with false.
   */
  fullTextSearch?: boolean;
  /** How long a write waits for another connection's lock, in ms (default DEFAULT_BUSY_TIMEOUT_MS). */
  busyTimeoutMs?: number;
  /**
   * Match `/_q` queries that may read much of the index on worker threads, each with a
   * read-only connection of its own (default false: every query on this connection, on the
   * calling thread). For a server: such a query (a one- or two-letter term is matched by
   * scanning every row; a common term has as many matches as there are invoices) then holds no
   * other request. A query that visits at most `inlineQueryRows` invoices (SqliteQueryPager.pageWithin)
   * still runs here: a worker's round trip (two thread wake-ups) would cost it ~0.2 ms, a third
   * of its time. Up to QUERY_QUEUE_LIMIT queries wait for a worker; one more is refused
   * (`unavailable`). Ignored for ':memory:', which no other connection can open.
   */
  queryWorkers?: boolean;
  /** With queryWorkers: the most invoices a query may visit on this thread (default INLINE_QUERY_ROWS; 0 = none). */
  inlineQueryRows?: number;
  /**
   * Merge the full-text index's segments in the background, in small steps, after this
   * connection writes and once after open (default true; see mergeFullText). false for a
   * short-lived opener (an admin command, a bulk load that merges at its end).
   */
  backgroundMerge?: boolean;
}

/** How long a write waits for another connection's lock, in ms, unless the options say. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** Most queries waiting for a query worker; one more is refused 503 `unavailable` (see queryWorkers). */
export const QUERY_QUEUE_LIMIT = 64;

/**
 * With query workers, a query that visits at most this many invoices runs on the calling thread
 * (see SqliteInvoiceIndexOptions.queryWorkers): at ~0.35 µs per candidate row (a full scan of
 * 100,000 took ~35 ms), about a millisecond at most.
 */
export const INLINE_QUERY_ROWS = 2000;

/**
 * Schema migrations: element i takes the file from user_version i to i + 1. Append only.
 * The full-text table is not part of them: it is created (and rebuilt from `invoices`) at open
 * whenever FTS5 is in use and the table is missing.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE invoices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    -- semver-order.ts versionSortKey: byte order = SemVer precedence
    version_key TEXT NOT NULL,
    major INTEGER NOT NULL,
    minor INTEGER NOT NULL,
    patch INTEGER NOT NULL,
    prerelease INTEGER NOT NULL CHECK (prerelease IN (0, 1)),
    -- 1 when the semver package reads every number exactly, so ranges can be checked on version_key
    semver_safe INTEGER NOT NULL CHECK (semver_safe IN (0, 1)),
    canonical_id TEXT NOT NULL UNIQUE,
    yanked INTEGER NOT NULL CHECK (yanked IN (0, 1)),
    created_at INTEGER NOT NULL,
    description TEXT,
    -- authors joined by newlines
    authors TEXT,
    -- lowercased name, version, description and authors joined by newlines (standard search)
    search_text TEXT NOT NULL,
    UNIQUE (name, version)
  );
  -- The query order. Both indexes cover every filter except standard search, so that paging
  -- and counting never visit the table for strict or version queries.
  CREATE INDEX invoices_order ON invoices (name, version_key DESC, version, yanked, prerelease, semver_safe, major, minor, patch);
  CREATE INDEX invoices_by_version ON invoices (version_key, version, name, yanked, prerelease, semver_safe, major, minor, patch);
  -- counts what an unfiltered query leaves out
  CREATE INDEX invoices_yanked ON invoices (id) WHERE yanked = 1;
  CREATE TABLE invoice_documents (
    invoice_id INTEGER PRIMARY KEY REFERENCES invoices (id) ON DELETE CASCADE,
    toml TEXT NOT NULL,
    json TEXT NOT NULL
  );
  CREATE TABLE invoice_parcels (
    invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (invoice_id, sha256)
  ) WITHOUT ROWID;
  CREATE INDEX invoice_parcels_sha256 ON invoice_parcels (sha256);
  `,
  // The OCI form of each invoice (oci-records.ts): written with it, never changed.
  `
  CREATE TABLE oci_configs (
    invoice_id INTEGER PRIMARY KEY REFERENCES invoices (id) ON DELETE CASCADE,
    -- the version as an OCI tag (+ -> _); NULL when it cannot be one
    tag TEXT,
    digest TEXT NOT NULL,
    config BLOB NOT NULL
  );
  CREATE INDEX oci_configs_digest ON oci_configs (digest);
  CREATE TABLE oci_manifests (
    invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    -- 0 = the bindle's manifest, n = the referrer of the n-th signature
    position INTEGER NOT NULL,
    digest TEXT NOT NULL,
    manifest BLOB NOT NULL,
    PRIMARY KEY (invoice_id, position)
  );
  CREATE INDEX oci_manifests_digest ON oci_manifests (digest);
  `,
  `
  -- hard deletes (InvoiceIndex.delete): a re-create of the id is refused while its tombstone exists
  CREATE TABLE tombstones (
    canonical_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    deleted_at INTEGER NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (name, version)
  );
  `,
  `
  -- OCI blob upload sessions (oci-uploads.ts): chunks = JSON array of {"sha256","size"} in order
  CREATE TABLE oci_uploads (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    chunks TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX oci_uploads_updated ON oci_uploads (updated_at);
  `,
  `
  -- Every bindle name once, kept by the triggers below: \`/_q\` looks terms up among the names
  -- (5 or more times fewer than the invoices) and reads the invoices of the matching names in
  -- query order from invoices_order (see SqliteInvoiceIndex.query).
  CREATE TABLE bindle_names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- the name as standard search sees it: the first line of search_text (lowercased)
    search_name TEXT NOT NULL,
    -- how many invoices have this name; the row goes with the last of them
    invoices INTEGER NOT NULL CHECK (invoices > 0)
  );
  INSERT INTO bindle_names (name, search_name, invoices)
    SELECT name, substr(min(search_text), 1, instr(min(search_text), char(10)) - 1), count(*) FROM invoices GROUP BY name;
  CREATE TRIGGER bindle_names_insert AFTER INSERT ON invoices BEGIN
    INSERT INTO bindle_names (name, search_name, invoices)
    VALUES (new.name, substr(new.search_text, 1, instr(new.search_text, char(10)) - 1), 1)
    ON CONFLICT (name) DO UPDATE SET invoices = invoices + 1;
  END;
  CREATE TRIGGER bindle_names_delete AFTER DELETE ON invoices BEGIN
    DELETE FROM bindle_names WHERE name = old.name AND invoices = 1;
    UPDATE bindle_names SET invoices = invoices - 1 WHERE name = old.name;
  END;
  CREATE TRIGGER bindle_names_update AFTER UPDATE ON invoices WHEN old.name IS NOT new.name BEGIN
    DELETE FROM bindle_names WHERE name = old.name AND invoices = 1;
    UPDATE bindle_names SET invoices = invoices - 1 WHERE name = old.name;
    INSERT INTO bindle_names (name, search_name, invoices)
    VALUES (new.name, substr(new.search_text, 1, instr(new.search_text, char(10)) - 1), 1)
    ON CONFLICT (name) DO UPDATE SET invoices = invoices + 1;
  END;
  `,
  `
  -- OCI blob links (oci-blob-links.ts): blob sha256 was uploaded to or mounted into repository
  -- name, at linked_at (the latest such, in ms). Independent of invoices: a link may come first.
  CREATE TABLE oci_blob_links (
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (name, sha256)
  ) WITHOUT ROWID;
  CREATE INDEX oci_blob_links_sha256 ON oci_blob_links (sha256, name);
  `,
  `
  -- The size each invoice's label gives the parcel (InvoiceIndex.insert refuses another size for
  -- a listed parcel), filled from the stored invoice records; NULL only where a record gives none.
  -- The index on (sha256, size) finds a listing of another size with two range probes.
  ALTER TABLE invoice_parcels ADD COLUMN size INTEGER;
  UPDATE invoice_parcels SET size = (
    SELECT min(json_extract(p.value, '$.label.size'))
    FROM invoice_documents d, json_each(d.json, '$.parcel') p
    WHERE d.invoice_id = invoice_parcels.invoice_id AND json_extract(p.value, '$.label.sha256') = invoice_parcels.sha256
  );
  DROP INDEX invoice_parcels_sha256;
  CREATE INDEX invoice_parcels_sha256 ON invoice_parcels (sha256, size);
  `,
];

/**
 * The full-text tables (FTS5 trigram, case-sensitive; terms are phrases): `bindle_name_fts` over
 * bindle_names (name for strict terms, search_name for standard ones), and `invoice_text_fts`
 * over the rest of each invoice's search_text after its name (version, description, authors;
 * contentless: it is an expression of search_text). A term has no whitespace, so it is in
 * search_text exactly when it is in the search name or in that rest. Kept in step by triggers.
 */
const FULL_TEXT_TABLES = ['bindle_name_fts', 'invoice_text_fts'] as const;
/** What search_text holds after the name: the text invoice_text_fts indexes. */
const REST_OF = (row: string): string => `substr(${row}.search_text, instr(${row}.search_text, char(10)) + 1)`;
const FULL_TEXT_SCHEMA = `
  CREATE VIRTUAL TABLE bindle_name_fts USING fts5(
    name, search_name, content = 'bindle_names', content_rowid = 'id', tokenize = 'trigram case_sensitive 1'
  );
  CREATE TRIGGER bindle_name_fts_insert AFTER INSERT ON bindle_names BEGIN
    INSERT INTO bindle_name_fts (rowid, name, search_name) VALUES (new.id, new.name, new.search_name);
  END;
  CREATE TRIGGER bindle_name_fts_delete AFTER DELETE ON bindle_names BEGIN
    INSERT INTO bindle_name_fts (bindle_name_fts, rowid, name, search_name) VALUES ('delete', old.id, old.name, old.search_name);
  END;
  CREATE TRIGGER bindle_name_fts_update AFTER UPDATE ON bindle_names
  WHEN old.name IS NOT new.name OR old.search_name IS NOT new.search_name BEGIN
    INSERT INTO bindle_name_fts (bindle_name_fts, rowid, name, search_name) VALUES ('delete', old.id, old.name, old.search_name);
    INSERT INTO bindle_name_fts (rowid, name, search_name) VALUES (new.id, new.name, new.search_name);
  END;
  INSERT INTO bindle_name_fts (bindle_name_fts) VALUES ('rebuild');
  CREATE VIRTUAL TABLE invoice_text_fts USING fts5(
    rest, content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1'
  );
  CREATE TRIGGER invoice_text_fts_insert AFTER INSERT ON invoices BEGIN
    INSERT INTO invoice_text_fts (rowid, rest) VALUES (new.id, ${REST_OF('new')});
  END;
  CREATE TRIGGER invoice_text_fts_delete AFTER DELETE ON invoices BEGIN
    DELETE FROM invoice_text_fts WHERE rowid = old.id;
  END;
  CREATE TRIGGER invoice_text_fts_update AFTER UPDATE ON invoices WHEN old.search_text IS NOT new.search_text BEGIN
    DELETE FROM invoice_text_fts WHERE rowid = old.id;
    INSERT INTO invoice_text_fts (rowid, rest) VALUES (new.id, ${REST_OF('new')});
  END;
  INSERT INTO invoice_text_fts (rowid, rest) SELECT id, ${REST_OF('invoices')} FROM invoices;
`;
/** The full-text table of schema versions up to 4 (name, search_text over invoices): dropped at open. */
const OLD_FULL_TEXT_SCHEMA_DROP = `
  DROP TRIGGER IF EXISTS invoice_fts_insert;
  DROP TRIGGER IF EXISTS invoice_fts_delete;
  DROP TRIGGER IF EXISTS invoice_fts_update;
  DROP TABLE IF EXISTS invoice_fts;
`;

/** How long (ms) the cache trusts its last look at `PRAGMA data_version`. */
export const RECENT_RECHECK_MS = 1;
/**
 * FTS5 `usermerge`: a merge step merges the segments of a level once it has this many (2: at
 * most one segment per level remains; FTS5's default, 4, is what its own automerge does). A
 * term is looked up in every segment, so fewer segments make every full-text match cheaper.
 */
export const FTS_USERMERGE = 2;
/** Pages one merge step writes: a bounded piece of work (~10–40 ms), one write transaction. */
const FTS_MERGE_PAGES = 64;
/** Background merging starts this long (ms) after a write, and leaves this gap between steps. */
const FTS_MERGE_DELAY_MS = 500;
const FTS_MERGE_GAP_MS = 20;
/** After a failed step (another connection held the lock), the next try waits this long (ms). */
const FTS_MERGE_RETRY_MS = 5000;
/**
 * How long an open waits for the write lock while it brings the schema up to date. Migrations and
 * the full-text tables are each built in one immediate transaction, and for 1,000,000 invoices
 * that took ~50 s: a second process opening the same file meanwhile waits for it, then finds the
 * file up to date, instead of failing on the ordinary busy timeout.
 */
const SCHEMA_UPGRADE_WAIT_MS = 10 * 60 * 1000;

interface InvoiceRow {
  id: number;
  name: string;
  version: string;
  canonical_id: string;
  yanked: number;
  created_at: number;
  toml: string;
  json: string;
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Database.SqliteError && (err.code === 'SQLITE_CONSTRAINT_UNIQUE' || err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY');
}

/** Runs a synchronous body as a promise: a throw becomes a rejection. */
function settle<T>(body: () => T): Promise<T> {
  return new Promise<T>((resolve) => {
    resolve(body());
  });
}

/**
 * The invoice index in SQLite. Synchronous underneath (better-sqlite3), on one connection per
 * instance, except that with `queryWorkers` a query's matching runs on a worker thread's
 * read-only connection; other processes may share the file (WAL, busy timeout).
 */
export class SqliteInvoiceIndex implements InvoiceIndex {
  readonly path: string;
  /** True when terms of 3+ characters use the FTS5 trigram index. */
  readonly fullTextSearch: boolean;
  private readonly db: Database.Database;
  private readonly statements: StatementCache;
  /** Queries on this connection (no query workers), and the count it keeps. */
  private readonly pager: SqliteQueryPager;
  /** The query workers, when queries are matched off this thread (see SqliteInvoiceIndexOptions.queryWorkers). */
  private readonly queryWorkers: WorkerPool<QueryJob, QueryPage> | undefined;
  private readonly inlineQueryRows: number;
  private readonly busyTimeoutMs: number;
  /** Invoices read recently, valid at a data version last confirmed at `checkedAt` (see recentInvoice). */
  private readonly recent = { dataVersion: -1, checkedAt: -Infinity, rows: recentInvoiceCache() };
  /** The two statements of every invoice GET, kept out of the keyed statement cache. */
  private dataVersionStatement: Database.Statement | undefined;
  private rowStatement: Database.Statement | undefined;
  /** lookup()'s miss: the invoice or else its tombstone, in one query. */
  private lookupStatement: Database.Statement | undefined;
  private closed = false;
  /** Background merging of the full-text index: on, and the timer of its next step. */
  private readonly backgroundMerge: boolean;
  private mergeTimer: NodeJS.Timeout | undefined;

  private constructor(path: string, db: Database.Database, fullTextSearch: boolean, options: SqliteInvoiceIndexOptions) {
    this.path = path;
    this.db = db;
    this.fullTextSearch = fullTextSearch;
    this.statements = new StatementCache(db);
    this.pager = new SqliteQueryPager(this.statements, fullTextSearch);
    this.busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.queryWorkers =
      options.queryWorkers === true && path !== ':memory:'
        ? new WorkerPool(workerBeside(import.meta.url, 'sqlite-query-worker'), undefined, { maxQueued: QUERY_QUEUE_LIMIT })
        : undefined;
    this.inlineQueryRows = options.inlineQueryRows ?? INLINE_QUERY_ROWS;
    this.backgroundMerge = (options.backgroundMerge ?? true) && fullTextSearch;
    this.scheduleMerge(FTS_MERGE_DELAY_MS);
  }

  /**
   * Opens (creating if needed, with its parent directory) the index file and brings its schema
   * up to date. Throws unavailable for a file written by a newer schema, or with a full-text
   * table this SQLite cannot maintain.
   */
  static open(path: string, options: SqliteInvoiceIndexOptions = {}): SqliteInvoiceIndex {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    // While it brings the schema up to date, an open waits as long as another process's upgrade
    // of the same file may take (SCHEMA_UPGRADE_WAIT_MS), then finds the file up to date.
    const db = new Database(path, { timeout: Math.max(busyTimeoutMs, SCHEMA_UPGRADE_WAIT_MS) });
    try {
      db.pragma('journal_mode = WAL');
      // FULL: every commit reaches the disk before a write returns. The index is only rebuilt
      // on demand, so an acknowledged invoice must not vanish from it on power loss; invoice
      // writes are rare, queries do not pay for it.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      capPageCache(db);
      const wanted = options.fullTextSearch ?? true;
      const fullText = wanted && hasTrigramFts(db);
      // Only a file that needs an upgrade takes the write lock: an up-to-date one opens without
      // waiting behind another process's write.
      if (!schemaUpToDate(db, fullText)) {
        migrate(db, path);
        setUpFullText(db, path, wanted, fullText);
      }
      db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      registerQueryFunctions(db);
      return new SqliteInvoiceIndex(path, db, fullText, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  insert(entry: StoredInvoice, options: InsertOptions = {}): Promise<void> {
    return this.insertMany([entry], options);
  }

  /**
   * Inserts every entry in one transaction, all or none (already_exists when one is taken,
   * deleted when one is tombstoned and `options.replaceTombstone` is not set): the bulk load of
   * an import or a benchmark seed, one commit (one fsync) for all of them.
   */
  insertMany(entries: readonly StoredInvoice[], options: InsertOptions = {}): Promise<void> {
    return settle(() => {
      this.checkOpen();
      entries.forEach(checkEntry);
      this.pager.forget();
      const write = this.db.transaction(() => {
        for (const entry of entries) {
          if (this.statements.rows('SELECT 1 FROM tombstones WHERE canonical_id = ?').get(entry.canonicalId) !== undefined) {
            if (options.replaceTombstone !== true) throw deletedError(entry.name, entry.version);
            this.statements.rows('DELETE FROM tombstones WHERE canonical_id = ?').run(entry.canonicalId);
          }
        }
        this.checkParcelSizes(entries);
        this.insertRows(entries);
      });
      try {
        write.immediate();
        this.scheduleMerge(FTS_MERGE_DELAY_MS);
      } catch (err) {
        if (isUniqueViolation(err)) {
          const taken = this.takenEntry(entries);
          const what = taken === undefined ? 'an invoice' : `invoice ${taken.name}/${taken.version}`;
          throw new BindleError('already_exists', `${what} already exists`, { cause: err });
        }
        throw err;
      }
    });
  }

  /**
   * Throws size_mismatch when an entry gives a parcel another size than a stored invoice lists it
   * with, or than an earlier entry of `entries` (InvoiceIndex.insert): per parcel, the nearest
   * stored size below and above the entry's, each one probe of invoice_parcels_sha256. Runs inside
   * the write transaction.
   */
  private checkParcelSizes(entries: readonly StoredInvoice[]): void {
    const other = this.statements.rows(
      `SELECT p.size, i.name, i.version FROM (
         SELECT * FROM (SELECT invoice_id, size FROM invoice_parcels WHERE sha256 = @sha256 AND size < @size LIMIT 1)
         UNION ALL SELECT * FROM (SELECT invoice_id, size FROM invoice_parcels WHERE sha256 = @sha256 AND size > @size LIMIT 1)
       ) p JOIN invoices i ON i.id = p.invoice_id LIMIT 1`,
    );
    const listed = new Map<string, { size: number; name: string; version: string }>();
    for (const entry of entries) {
      for (const { label } of entry.invoice.parcel ?? []) {
        const earlier = listed.get(label.sha256);
        const found = earlier ?? (other.get({ sha256: label.sha256, size: label.size }) as { size: number; name: string; version: string } | undefined);
        if (found !== undefined && found.size !== label.size) throw sizeMismatchError(entry, label.sha256, label.size, found);
        if (earlier === undefined) listed.set(label.sha256, { size: label.size, name: entry.name, version: entry.version });
      }
    }
  }

  /** After a failed insert: the first entry whose name/version is stored, or repeats an earlier entry's. */
  private takenEntry(entries: readonly StoredInvoice[]): StoredInvoice | undefined {
    const seen = new Set<string>();
    return entries.find((entry) => {
      const key = `${entry.name}\n${entry.version}`;
      if (seen.has(key)) return true;
      seen.add(key);
      return this.statements.rows('SELECT 1 FROM invoices WHERE name = ? AND version = ?').get(entry.name, entry.version) !== undefined;
    });
  }

  get(name: string, version: string): Promise<StoredInvoice | undefined> {
    return settle(() => {
      this.checkOpen();
      return this.recentInvoice(name, version, false);
    });
  }

  lookup(name: string, version: string): Promise<StoredInvoice | Tombstone | undefined> {
    return settle(() => {
      this.checkOpen();
      return this.recentInvoice(name, version, true);
    });
  }

  /** The recently-read cache's entry, once the cache is confirmed current (`PRAGMA data_version`, as lookup() does). */
  cachedInvoice(name: string, version: string): StoredInvoice | undefined {
    if (this.closed) return undefined;
    this.confirmRecent();
    return this.recent.rows.get(recentKey(name, version));
  }

  yank(entry: StoredInvoice): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      checkYankEntry(entry);
      this.forgetReads();
      return this.db
        .transaction(() => {
          const row = this.statements.rows('SELECT id, yanked FROM invoices WHERE name = ? AND version = ?').get(entry.name, entry.version) as
            | { id: number; yanked: number }
            | undefined;
          if (row === undefined) throw new BindleError('not_found', `invoice ${entry.name}/${entry.version} does not exist`);
          if (row.yanked === 1) return false;
          this.statements.rows('UPDATE invoices SET yanked = 1 WHERE id = ? AND yanked = 0').run(row.id);
          this.statements.rows('UPDATE invoice_documents SET toml = ?, json = ? WHERE invoice_id = ?').run(entry.toml, entry.json, row.id);
          return true;
        })
        .immediate();
    });
  }

  delete(tombstone: Tombstone): Promise<void> {
    return settle(() => {
      this.checkOpen();
      checkTombstone(tombstone);
      this.forgetReads();
      this.db
        .transaction(() => {
          // The links of the name to what the invoice lists, while its rows still say what that is.
          this.statements.rows(
            `DELETE FROM oci_blob_links WHERE name = ? AND sha256 IN (
               SELECT p.sha256 FROM invoice_parcels p JOIN invoices i ON i.id = p.invoice_id WHERE i.name = ? AND i.version = ?
               UNION ALL SELECT substr(c.digest, 8) FROM oci_configs c JOIN invoices i ON i.id = c.invoice_id WHERE i.name = ? AND i.version = ?)`,
          ).run(tombstone.name, tombstone.name, tombstone.version, tombstone.name, tombstone.version);
          const removed = this.statements.rows('DELETE FROM invoices WHERE name = ? AND version = ?').run(tombstone.name, tombstone.version);
          if (removed.changes === 0) throw new BindleError('not_found', `invoice ${tombstone.name}/${tombstone.version} does not exist`);
          this.statements.rows('INSERT OR REPLACE INTO tombstones (canonical_id, name, version, deleted_at, record) VALUES (?, ?, ?, ?, ?)').run(
            tombstone.canonicalId,
            tombstone.name,
            tombstone.version,
            tombstone.deletedAt,
            tombstone.record,
          );
        })
        .immediate();
      this.scheduleMerge(FTS_MERGE_DELAY_MS);
    });
  }

  tombstone(name: string, version: string): Promise<Tombstone | undefined> {
    return settle(() => {
      this.checkOpen();
      const row = this.statements.rows('SELECT canonical_id, name, version, deleted_at, record FROM tombstones WHERE name = ? AND version = ?').get(
        name,
        version,
      ) as TombstoneColumns | undefined;
      return row === undefined ? undefined : tombstoneOf(row);
    });
  }

  tombstones(): Promise<Tombstone[]> {
    return settle(() => {
      this.checkOpen();
      const rows = this.statements.rows('SELECT canonical_id, name, version, deleted_at, record FROM tombstones ORDER BY name, version').all() as TombstoneColumns[];
      return rows.map(tombstoneOf);
    });
  }

  addTombstone(tombstone: Tombstone): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      checkTombstone(tombstone);
      return this.db
        .transaction(() => {
          if (this.statements.rows('SELECT 1 FROM invoices WHERE name = ? AND version = ?').get(tombstone.name, tombstone.version) !== undefined) {
            throw new BindleError('already_exists', `invoice ${tombstone.name}/${tombstone.version} exists: it cannot have a tombstone`);
          }
          const written = this.statements.rows('INSERT OR IGNORE INTO tombstones (canonical_id, name, version, deleted_at, record) VALUES (?, ?, ?, ?, ?)').run(
            tombstone.canonicalId,
            tombstone.name,
            tombstone.version,
            tombstone.deletedAt,
            tombstone.record,
          );
          return written.changes === 1;
        })
        .immediate();
    });
  }

  /**
   * Matches on this connection, or (with `queryWorkers`, unless the query is cheap) on a query
   * worker while this thread goes on; the page's documents are then read here by row id.
   */
  async query(q: InvoiceQuery): Promise<InvoiceQueryResult> {
    this.checkOpen();
    checkPaging(q);
    const page =
      this.queryWorkers === undefined
        ? this.pager.page(q)
        : (this.pager.pageWithin(q, this.inlineQueryRows) ??
          (await this.queryWorkers.run({ path: this.path, fullTextSearch: this.fullTextSearch, busyTimeoutMs: this.busyTimeoutMs, query: q })));
    this.checkOpen();
    return { total: page.total, invoices: this.documents(page.ids) };
  }

  /**
   * The stored invoices with these row ids, in this order, read with one statement (one per id
   * costs ~4× as much). A row another connection deleted since the ids were read is left out.
   */
  private documents(ids: readonly number[]): StoredInvoice[] {
    if (ids.length === 0) return [];
    const rows = this.statements.rows(
      `SELECT i.id, i.name, i.version, i.canonical_id, i.yanked, i.created_at, d.toml, d.json
       FROM invoices i JOIN invoice_documents d ON d.invoice_id = i.id WHERE i.id IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(ids)) as InvoiceRow[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.flatMap((id) => {
      const row = byId.get(id);
      return row === undefined ? [] : [storedInvoice(row)];
    });
  }

  /**
   * Merges each full-text index into one segment (FTS5 'optimize'), in one write transaction. A
   * bulk load leaves it in many segments, and a term is looked up in each: after a seed of
   * 100,000 invoices this halves the time of a `/_q` full-text match. For after bulk loads.
   */
  compactFullText(): Promise<void> {
    return settle(() => {
      this.checkOpen();
      if (!this.fullTextSearch) return;
      for (const table of FULL_TEXT_TABLES) this.db.prepare(`INSERT INTO ${table} (${table}) VALUES ('optimize')`).run();
    });
  }

  /**
   * Merges the full-text indexes' segments until no level has FTS_USERMERGE of them (what the
   * background merging reaches when left to finish), in steps of FTS_MERGE_PAGES pages, each
   * its own write transaction. For after bulk loads; much cheaper than compactFullText on a
   * large index that is already mostly merged.
   */
  mergeFullText(): Promise<void> {
    return settle(() => {
      this.checkOpen();
      while (this.mergeStep());
    });
  }

  /**
   * One merge step (one bounded write transaction) of the first full-text table that has
   * something to merge; true when it merged something (more may be left).
   */
  private mergeStep(): boolean {
    if (!this.fullTextSearch) return false;
    const changes = this.statements.values('SELECT total_changes()');
    return FULL_TEXT_TABLES.some((table) => {
      const before = changes.get() as number;
      this.statements.rows(`INSERT INTO ${table} (${table}, rank) VALUES ('merge', ${FTS_MERGE_PAGES})`).run();
      // FTS5's documented test: fewer than 2 changed rows means there was nothing to merge.
      return (changes.get() as number) - before >= 2;
    });
  }

  /**
   * Runs a background merge step in `delayMs` unless one is already due; each step that merged
   * something schedules the next after FTS_MERGE_GAP_MS, so requests run between steps. A step
   * that fails (the lock stayed busy) is tried again later: merging is upkeep, not correctness.
   */
  private scheduleMerge(delayMs: number): void {
    if (!this.backgroundMerge || this.closed || this.mergeTimer !== undefined) return;
    this.mergeTimer = setTimeout(() => {
      this.mergeTimer = undefined;
      if (this.closed) return;
      let next: number | undefined;
      try {
        if (this.mergeStep()) next = FTS_MERGE_GAP_MS;
      } catch {
        next = FTS_MERGE_RETRY_MS;
      }
      if (next !== undefined) this.scheduleMerge(next);
    }, delayMs);
    this.mergeTimer.unref();
  }

  invoicesWithParcel(sha256: string): Promise<Array<{ name: string; version: string; yanked: boolean }>> {
    return settle(() => {
      this.checkOpen();
      const rows = this.statements.rows(
        `SELECT i.name, i.version, i.yanked FROM invoice_parcels p JOIN invoices i ON i.id = p.invoice_id
         WHERE p.sha256 = ? ORDER BY i.name, i.version_key DESC, i.version`,
      ).all(sha256) as Array<{ name: string; version: string; yanked: number }>;
      return rows.map((r) => ({ name: r.name, version: r.version, yanked: r.yanked === 1 }));
    });
  }

  ociManifest(name: string, version: string): Promise<OciManifestRecord | undefined> {
    return settle(() => {
      this.checkOpen();
      const row = this.statements.rows(
        `${OCI_MANIFEST_SELECT} WHERE i.name = ? AND i.version = ? AND m.position = 0`,
      ).get(name, version) as OciManifestColumns | undefined;
      return row === undefined ? undefined : ociManifestRecord(row);
    });
  }

  ociManifestByDigest(name: string, digest: string): Promise<OciManifestRecord | undefined> {
    return settle(() => {
      this.checkOpen();
      const row = this.statements.rows(`${OCI_MANIFEST_SELECT} WHERE m.digest = ? AND i.name = ? LIMIT 1`).get(digest, name) as
        | OciManifestColumns
        | undefined;
      return row === undefined ? undefined : ociManifestRecord(row);
    });
  }

  ociConfig(name: string, digest: string): Promise<Buffer | undefined> {
    return settle(() => {
      this.checkOpen();
      return this.statements.values(
        'SELECT c.config FROM oci_configs c JOIN invoices i ON i.id = c.invoice_id WHERE c.digest = ? AND i.name = ? LIMIT 1',
      ).get(digest, name) as Buffer | undefined;
    });
  }

  ociTags(name: string, last: string | undefined, n: number): Promise<OciTagPage | undefined> {
    return settle(() => {
      this.checkOpen();
      if (this.statements.values('SELECT 1 FROM invoices WHERE name = ? LIMIT 1').get(name) === undefined) return undefined;
      const tags = this.statements.values(
        `SELECT c.tag FROM invoices i JOIN oci_configs c ON c.invoice_id = i.id
         WHERE i.name = ? AND i.yanked = 0 AND c.tag IS NOT NULL AND c.tag > ? ORDER BY c.tag LIMIT ?`,
      ).all(name, last ?? '', n + 1) as string[];
      return { tags: tags.slice(0, n), more: tags.length > n };
    });
  }

  ociReferrers(name: string, subject: string): Promise<OciManifestRecord[]> {
    return settle(() => {
      this.checkOpen();
      const rows = this.statements.rows(
        `${OCI_MANIFEST_SELECT} JOIN oci_manifests s ON s.invoice_id = m.invoice_id AND s.position = 0
         WHERE s.digest = ? AND i.name = ? AND m.position > 0 ORDER BY m.position`,
      ).all(subject, name) as OciManifestColumns[];
      return rows.map(ociManifestRecord);
    });
  }

  createOciUpload(session: OciUploadSession, expireBefore: number): Promise<void> {
    return settle(() => {
      this.checkOpen();
      this.db.transaction(() => {
        this.statements.rows('DELETE FROM oci_uploads WHERE updated_at < ?').run(expireBefore);
        try {
          this.statements.rows('INSERT INTO oci_uploads (uuid, name, chunks, size, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)').run(
            session.uuid, session.name, '[]', session.createdAt, session.updatedAt,
          );
        } catch (err) {
          if (isUniqueViolation(err)) throw new BindleError('already_exists', `upload session ${session.uuid} already exists`);
          throw err;
        }
      })();
    });
  }

  ociUpload(uuid: string): Promise<OciUploadSession | undefined> {
    return settle(() => {
      this.checkOpen();
      const row = this.statements.rows('SELECT uuid, name, chunks, size, created_at, updated_at FROM oci_uploads WHERE uuid = ?').get(uuid) as
        | Parameters<typeof uploadSessionOf>[0]
        | undefined;
      return row === undefined ? undefined : uploadSessionOf(row);
    });
  }

  appendOciUpload(uuid: string, offset: number, chunk: OciUploadChunk, updatedAt: number): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      checkUploadChunk(chunk);
      const result = this.statements.rows(
        `UPDATE oci_uploads SET chunks = json_insert(chunks, '$[#]', json(?)), size = size + ?, updated_at = ?
         WHERE uuid = ? AND size = ?`,
      ).run(JSON.stringify({ sha256: chunk.sha256, size: chunk.size }), chunk.size, updatedAt, uuid, offset);
      return result.changes === 1;
    });
  }

  deleteOciUpload(uuid: string): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      return this.statements.rows('DELETE FROM oci_uploads WHERE uuid = ?').run(uuid).changes === 1;
    });
  }

  linkOciBlob(link: OciBlobLink): Promise<void> {
    return settle(() => {
      this.checkOpen();
      checkBlobLink(link);
      this.statements.rows(
        `INSERT INTO oci_blob_links (name, sha256, linked_at) VALUES (?, ?, ?)
         ON CONFLICT (name, sha256) DO UPDATE SET linked_at = max(linked_at, excluded.linked_at)`,
      ).run(link.name, link.sha256, link.linkedAt);
    });
  }

  ociBlobLinked(name: string, sha256: string): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      return this.statements.values('SELECT 1 FROM oci_blob_links WHERE name = ? AND sha256 = ?').get(name, sha256) !== undefined;
    });
  }

  ociBlobLinks(sha256: string): Promise<OciBlobLink[]> {
    return settle(() => {
      this.checkOpen();
      const rows = this.statements.rows('SELECT name, sha256, linked_at FROM oci_blob_links WHERE sha256 = ? ORDER BY name').all(sha256) as BlobLinkRow[];
      return rows.map(blobLinkOf);
    });
  }

  ociBlobLinkPage(after: { name: string; sha256: string } | undefined, n: number): Promise<OciBlobLink[]> {
    return settle(() => {
      this.checkOpen();
      checkPageSize(n);
      const rows = (
        after === undefined
          ? this.statements.rows('SELECT name, sha256, linked_at FROM oci_blob_links ORDER BY sha256, name LIMIT ?').all(n)
          : this.statements.rows(
            'SELECT name, sha256, linked_at FROM oci_blob_links WHERE (sha256, name) > (?, ?) ORDER BY sha256, name LIMIT ?',
          ).all(after.sha256, after.name, n)
      ) as BlobLinkRow[];
      return rows.map(blobLinkOf);
    });
  }

  unlinkOciBlob(sha256: string, linkedBefore: number): Promise<number> {
    return settle(() => {
      this.checkOpen();
      return this.statements.rows('DELETE FROM oci_blob_links WHERE sha256 = ? AND linked_at <= ?').run(sha256, linkedBefore).changes;
    });
  }

  ociRepositories(last: string | undefined, n: number): Promise<OciRepositoryPage> {
    return settle(() => {
      this.checkOpen();
      checkPageSize(n);
      // bindle_names holds every name of a stored invoice once (kept by triggers).
      const names = this.statements.values('SELECT name FROM bindle_names WHERE name > ? ORDER BY name LIMIT ?').all(last ?? '', n + 1) as string[];
      return { names: names.slice(0, n), more: names.length > n };
    });
  }

  /** The page cache this connection may hold, in bytes, as SQLite reports it (`PRAGMA cache_size`). */
  pageCacheBytes(): number {
    const size = this.db.pragma('cache_size', { simple: true }) as number;
    return size < 0 ? -size * 1024 : size * (this.db.pragma('page_size', { simple: true }) as number);
  }

  count(): Promise<number> {
    return settle(() => {
      this.checkOpen();
      return this.statements.values('SELECT count(*) FROM invoices').get() as number;
    });
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.mergeTimer);
      this.mergeTimer = undefined;
      this.queryWorkers?.close();
      this.statements.clear();
      this.db.close();
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new BindleError('unavailable', `the invoice index ${this.path} is closed`);
  }

  /** `PRAGMA data_version`: changes whenever another connection commits. */
  private dataVersion(): number {
    this.dataVersionStatement ??= this.db.prepare('PRAGMA data_version').pluck();
    return this.dataVersionStatement.get() as number;
  }

  /** Drops what this connection remembers of earlier reads (the count, recent invoices) before a write that changes them. */
  private forgetReads(): void {
    this.pager.forget();
    this.recent.rows.clear();
  }

  /**
   * One stored invoice, from the recently-read cache when no connection has written since it
   * was read: this connection's writes clear the cache (yank, delete; insert only adds rows, and
   * misses are not cached), another connection's commits change `PRAGMA data_version`, which
   * is read at most every RECENT_RECHECK_MS (under load it would cost more than the cache
   * saves): a commit by another process is seen by every read that starts that long after it.
   * Bounded as recent-invoices.ts says. A hit hands out the same
   * object again, so what it parsed once (the invoice, read by every parcel upload of a bindle)
   * and what callers keyed on it (ETags) are reused; callers must not change it. With
   * `withTombstone` (lookup), a miss reads the invoice or else its tombstone in one query
   * (tombstones are never cached).
   */
  private recentInvoice(name: string, version: string, withTombstone: false): StoredInvoice | undefined;
  private recentInvoice(name: string, version: string, withTombstone: boolean): StoredInvoice | Tombstone | undefined;
  private recentInvoice(name: string, version: string, withTombstone: boolean): StoredInvoice | Tombstone | undefined {
    this.confirmRecent();
    const key = recentKey(name, version);
    const hit = this.recent.rows.get(key);
    if (hit !== undefined) return hit;
    let found: InvoiceRow | undefined;
    if (withTombstone) {
      this.lookupStatement ??= this.db.prepare(
        `SELECT 0 AS tombstone, i.id, i.name, i.version, i.canonical_id, i.yanked, i.created_at, d.toml, d.json, NULL AS deleted_at, NULL AS record
         FROM invoices i JOIN invoice_documents d ON d.invoice_id = i.id WHERE i.name = ? AND i.version = ?
         UNION ALL
         SELECT 1, NULL, name, version, canonical_id, NULL, NULL, NULL, NULL, deleted_at, record FROM tombstones WHERE name = ? AND version = ?
         ORDER BY 1 LIMIT 1`,
      );
      const either = this.lookupStatement.get(name, version, name, version) as (InvoiceRow & TombstoneColumns & { tombstone: number }) | undefined;
      if (either?.tombstone === 1) return tombstoneOf(either);
      found = either;
    } else {
      this.rowStatement ??= this.db.prepare(
        `SELECT i.id, i.name, i.version, i.canonical_id, i.yanked, i.created_at, d.toml, d.json
         FROM invoices i JOIN invoice_documents d ON d.invoice_id = i.id WHERE i.name = ? AND i.version = ?`,
      );
      found = this.rowStatement.get(name, version) as InvoiceRow | undefined;
    }
    if (found === undefined) return undefined;
    const row = storedInvoice(found);
    this.recent.rows.set(key, row);
    return row;
  }

  /** Empties the recently-read cache when another connection committed since it was last confirmed (at most every RECENT_RECHECK_MS). */
  private confirmRecent(): void {
    const now = performance.now();
    if (now - this.recent.checkedAt < RECENT_RECHECK_MS) return;
    const dataVersion = this.dataVersion();
    if (this.recent.dataVersion !== dataVersion) {
      this.recent.rows.clear();
      this.recent.dataVersion = dataVersion;
    }
    this.recent.checkedAt = now;
  }

  /**
   * Inserts the invoices' rows and details, ROWS_PER_INSERT rows per statement (the full-text
   * trigger costs far less per row within one statement than once per statement); runs inside
   * a write transaction.
   */
  private insertRows(entries: readonly StoredInvoice[]): void {
    const prepare = (sql: string): Database.Statement => this.statements.rows(sql);
    const ids = new Map<string, number>();
    const returned = insertValues(
      prepare,
      `INSERT INTO invoices (name, version, version_key, major, minor, patch, prerelease, semver_safe, canonical_id,
                             yanked, created_at, description, authors, search_text)`,
      entries.map((entry) => {
        const parts = versionParts(entry.version);
        return [
          entry.name,
          entry.version,
          parts.key,
          parts.major,
          parts.minor,
          parts.patch,
          parts.prerelease.length > 0 ? 1 : 0,
          parts.semverSafe ? 1 : 0,
          entry.canonicalId,
          entry.yanked ? 1 : 0,
          entry.createdAt,
          entry.invoice.bindle.description ?? null,
          entry.invoice.bindle.authors?.join('\n') ?? null,
          searchText(entry.invoice),
        ];
      }),
      'RETURNING id, canonical_id',
    ) as Array<{ id: number; canonical_id: string }>;
    for (const row of returned) ids.set(row.canonical_id, row.id);
    // RETURNING does not promise the order of VALUES: rows are matched by canonical id.
    const stored = entries.map((entry) => {
      const id = ids.get(entry.canonicalId);
      if (id === undefined) throw new Error(`invoice ${entry.name}/${entry.version} was not inserted`);
      return { id, entry };
    });
    insertValues(prepare, 'INSERT INTO invoice_documents (invoice_id, toml, json)', stored.map(({ id, entry }) => [id, entry.toml, entry.json]));
    insertValues(
      prepare,
      'INSERT OR IGNORE INTO invoice_parcels (invoice_id, sha256, size)',
      stored.flatMap(({ id, entry }) => (entry.invoice.parcel ?? []).map((p) => [id, p.label.sha256, p.label.size])),
    );
    writeOci(prepare, stored);
  }


}


/** Rows per multi-row INSERT: bound parameters stay under SQLite's limit (32766) with rows of up to 14 columns. */
export const ROWS_PER_INSERT = 500;

/**
 * Runs `head VALUES (...), (...) tail` for `rows` (all of one width), ROWS_PER_INSERT rows per
 * statement; the rows the statements return (with a RETURNING tail), in statement order.
 */
function insertValues(prepare: (sql: string) => Database.Statement, head: string, rows: readonly unknown[][], tail = ''): unknown[] {
  const width = rows[0]?.length ?? 0;
  const tuple = `(${Array.from({ length: width }, () => '?').join(', ')})`;
  const returned: unknown[] = [];
  for (let first = 0; first < rows.length; first += ROWS_PER_INSERT) {
    const chunk = rows.slice(first, first + ROWS_PER_INSERT);
    const statement = prepare(`${head} VALUES ${Array.from({ length: chunk.length }, () => tuple).join(', ')} ${tail}`);
    const params = chunk.flat();
    if (tail === '') statement.run(...params);
    else returned.push(...statement.all(...params));
  }
  return returned;
}

/** Writes the OCI rows of these invoice rows (oci-records.ts ociRowsOf); a row already there is kept. */
function writeOci(prepare: (sql: string) => Database.Statement, stored: ReadonlyArray<{ id: number; entry: StoredInvoice }>): void {
  const rows = stored.map(({ id, entry }) => ({ id, rows: ociRowsOf(entry) }));
  insertValues(
    prepare,
    'INSERT OR IGNORE INTO oci_configs (invoice_id, tag, digest, config)',
    rows.map(({ id, rows: oci }) => [id, oci.tag, oci.configDigest, oci.config]),
  );
  insertValues(
    prepare,
    'INSERT OR IGNORE INTO oci_manifests (invoice_id, position, digest, manifest)',
    rows.flatMap(({ id, rows: oci }) => oci.manifests.map((m) => [id, m.position, m.digest, m.bytes])),
  );
}

/**
 * The schema version whose migration added the OCI tables. Every insert at or above it writes
 * OCI rows (a server that knows fewer versions refuses the file), so only a file migrated from
 * below it has invoices without them.
 */
const OCI_TABLES_VERSION = 2;

/**
 * Writes the OCI rows of invoices stored before the OCI tables existed, from their current TOML;
 * runs inside the migration's transaction (a crash cannot leave the new version without them).
 */
function backfillOci(db: Database.Database): void {
  const rows = db
    .prepare(
      `SELECT i.id, i.name, i.version, i.canonical_id, i.yanked, i.created_at, d.toml, d.json
       FROM invoices i JOIN invoice_documents d ON d.invoice_id = i.id
       WHERE NOT EXISTS (SELECT 1 FROM oci_configs c WHERE c.invoice_id = i.id)`,
    )
    .all() as InvoiceRow[];
  writeOci((sql) => db.prepare(sql), rows.map((row) => ({ id: row.id, entry: storedInvoice(row) })));
}

/**
 * Applies pending migrations in one immediate transaction, with the OCI backfill when they cross
 * OCI_TABLES_VERSION (not at every open: it reads every invoice); refuses a newer schema.
 */
function migrate(db: Database.Database, path: string): void {
  db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new BindleError(
        'unavailable',
        `invoice index ${path} has schema version ${current}, but this server only knows versions up to ${MIGRATIONS.length}: upgrade the server, or reindex into a new file`,
      );
    }
    for (const step of MIGRATIONS.slice(current)) db.exec(step);
    if (current < OCI_TABLES_VERSION) backfillOci(db);
    if (current < MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}

/** True when this SQLite has FTS5 with the trigram tokenizer (3.34+) and contentless delete (3.43+). */
function hasTrigramFts(db: Database.Database): boolean {
  try {
    db.exec(`CREATE VIRTUAL TABLE temp.invoice_fts_probe USING fts5(x, content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1')`);
    db.exec('DROP TABLE temp.invoice_fts_probe');
    return true;
  } catch {
    return false;
  }
}

/** Which full-text tables a file has: the single table of schema versions up to 4, the current ones, and whether those are tuned. */
interface FullTextState {
  old: boolean;
  current: boolean;
  /** The current tables exist and each has this module's automerge setting. */
  tuned: boolean;
}

function fullTextState(db: Database.Database): FullTextState {
  const has = (table: string): boolean => db.prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?`).get(table) !== undefined;
  const current = has(FULL_TEXT_TABLES[0]);
  const tuned =
    current && FULL_TEXT_TABLES.every((table) => db.prepare(`SELECT v FROM ${table}_config WHERE k = 'usermerge'`).pluck().get() === FTS_USERMERGE);
  return { old: has('invoice_fts'), current, tuned };
}

/**
 * True when neither migrate nor setUpFullText has anything to do (the full-text tables in use
 * when `use`, none otherwise). Reads one snapshot without taking the write lock.
 */
function schemaUpToDate(db: Database.Database, use: boolean): boolean {
  return db
    .transaction(() => {
      if (db.pragma('user_version', { simple: true }) !== MIGRATIONS.length) return false;
      const { old, current, tuned } = fullTextState(db);
      return !old && (use ? tuned : !current);
    })
    .deferred();
}

/**
 * Creates the full-text tables when `use` (wanted, and this SQLite can maintain them) and they
 * are missing (replacing the single table of schema versions up to 4), in one transaction: an
 * open killed while it builds them leaves the file as it was, and the next open builds them
 * again. Refuses a file with full-text tables it will not maintain.
 */
function setUpFullText(db: Database.Database, path: string, wanted: boolean, use: boolean): void {
  db.transaction(() => {
    const { old, current, tuned } = fullTextState(db);
    if ((old || current) && !use) {
      throw new BindleError(
        'unavailable',
        `invoice index ${path} has a full-text table, which ${wanted ? 'this SQLite (no FTS5 trigram tokenizer) cannot maintain' : 'must be kept when full-text search is off'}`,
      );
    }
    if (!use) return;
    if (old) db.exec(OLD_FULL_TEXT_SCHEMA_DROP);
    if (!current) db.exec(FULL_TEXT_SCHEMA);
    // Setting a table's automerge again is harmless: set it on all of them.
    if (!tuned) for (const table of FULL_TEXT_TABLES) db.exec(`INSERT INTO ${table} (${table}, rank) VALUES ('usermerge', ${FTS_USERMERGE})`);
  }).immediate();
}
