/**
 * The invoice index in one SQLite file (better-sqlite3): schema and its migrations, atomic
 * writes, and `/_q` queries — substring terms (FTS5 trigram indexes over the distinct bindle
 * names and the rest of each invoice's search text, their segments merged in the background
 * after writes, or a scan where FTS5 is unavailable), SemVer version filters, yanked filtering,
 * and stable name/SemVer paging.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import semver from 'semver';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { InsertOptions, InvoiceIndex, InvoiceQuery, InvoiceQueryResult, StoredInvoice, Tombstone } from './invoice-index.js';
import { OCI_MANIFEST_SELECT, ociManifestRecord, ociRowsOf, type OciManifestColumns, type OciManifestRecord, type OciTagPage } from './oci-records.js';
import { checkUploadChunk, uploadSessionOf, type OciUploadChunk, type OciUploadSession } from './oci-uploads.js';
import { recentInvoiceCache, recentKey } from './recent-invoices.js';
import {
  checkEntry, checkPaging, checkTombstone, checkYankEntry, deletedError, queryMatch, searchText, storedInvoice, tombstoneOf,
  type TombstoneColumns,
} from './invoice-index-rules.js';
import { versionFilter } from './invoice-index-versions.js';
import { versionParts } from './semver-order.js';

/** How SqliteInvoiceIndex.open sets up the file. */
export interface SqliteInvoiceIndexOptions {
  /**
   * Use the FTS5 trigram index for terms of 3 or more characters (default true, when the
   * bundled SQLite has FTS5). false = every term is matched by scanning (the fallback path).
   * A file that already has the full-text table cannot be opened with false.
   */
  fullTextSearch?: boolean;
  /** How long a write waits for another connection's lock, in ms (default 5000). */
  busyTimeoutMs?: number;
  /**
   * Merge the full-text index's segments in the background, in small steps, after this
   * connection writes and once after open (default true; see mergeFullText). false for a
   * short-lived opener (an admin command, a bulk load that merges at its end).
   */
  backgroundMerge?: boolean;
}

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

/** Terms shorter than this (in code points) have no trigram and are matched by scanning. */
const TRIGRAM = 3;
const STATEMENT_CACHE_SIZE = 64;
/**
 * SQLite's page cache per connection. Every page read stays in it until the cap, so a server
 * whose index grows holds up to this much more memory however little it serves; the pages are
 * also in the OS page cache, from which a miss costs one read. 16 MiB: `/_q` on the bench's
 * 100,000 invoices (a ~530 MB file, most of it OCI records) measured as fast as with 64 MiB, and
 * the resting RSS ~50 MiB lower.
 */
export const PAGE_CACHE_BYTES = 16 * 2 ** 20;
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
/** The factor between the entries a walk of the order index visits and the matches sorting reads (see page). */
const WALK_ADVANTAGE = 4;
/**
 * How long an open waits for the write lock while it brings the schema up to date. Migrations and
 * the full-text tables are each built in one immediate transaction, and for 1,000,000 invoices
 * that took ~50 s: a second process opening the same file meanwhile waits for it, then finds the
 * file up to date, instead of failing on the ordinary busy timeout.
 */
const SCHEMA_UPGRADE_WAIT_MS = 10 * 60 * 1000;
/** A walk of the order index gives up after this many times the entries it was expected to visit. */
const WALK_SLACK = 2;

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

/** The conditions of one query. */
interface Filter {
  /** Leave yanked invoices out. */
  readonly unyanked: boolean;
  /** The column the terms are matched in: name (strict) or search_text (standard). */
  readonly column: 'name' | 'search_text';
  /** Terms the full-text index can find (3+ characters, FTS5 in use). */
  readonly indexed: string[];
  /** Every other condition (short terms, version), on `invoices i`, with its parameters in order. */
  readonly clauses: string[];
  readonly params: unknown[];
}

/** The WHERE clause of a filter, every term checked on the row (no full-text index), and its parameters. */
function whereOf(filter: Filter): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (filter.unyanked) clauses.push('i.yanked = 0');
  for (const term of filter.indexed) {
    clauses.push(`instr(i.${filter.column}, ?) > 0`);
    params.push(term);
  }
  clauses.push(...filter.clauses);
  params.push(...filter.params);
  return { where: clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`, params };
}

/** The parts of matchesOf: the invoices of matching names, and (standard) those whose rest of the text matches. */
interface Matches {
  readonly byName: { sql: string; params: unknown[] };
  /** Standard queries: the second part, its MATCH expression, and whether yanked is its only other condition. */
  readonly byText?: { sql: string; params: unknown[]; match: string; plain: boolean };
}

/**
 * A query yielding (id, name, version_key, version) of every invoice a filter with indexed
 * terms matches, and its parameters. The terms are looked up in the full-text tables: strict
 * ones all at once among the names; a standard one among the search names and the rest of the
 * invoices' search text (its longest term; the others are checked on each candidate's
 * search_text). The invoices of the matching names are read from invoices_order, whose
 * entries hold every other condition's columns, in query order when the caller sorts.
 */
function matchesOf(filter: Filter): Matches {
  const conditions: string[] = filter.unyanked ? ['i.yanked = 0'] : [];
  const conditionParams: unknown[] = [];
  let nameMatch: string;
  let restMatch: string | undefined;
  if (filter.column === 'name') {
    nameMatch = `{name} : (${filter.indexed.map(ftsPhrase).join(' AND ')})`;
  } else {
    const [driver = '', ...others] = [...filter.indexed].sort((a, b) => codePoints(b) - codePoints(a));
    nameMatch = `{search_name} : ${ftsPhrase(driver)}`;
    restMatch = ftsPhrase(driver);
    for (const term of others) {
      conditions.push('instr(i.search_text, ?) > 0');
      conditionParams.push(term);
    }
  }
  conditions.push(...filter.clauses);
  conditionParams.push(...filter.params);
  const and = conditions.map((condition) => ` AND ${condition}`).join('');
  const columns = 'SELECT i.id AS id, i.name AS name, i.version_key AS version_key, i.version AS version';
  const names = 'SELECT name FROM bindle_names WHERE id IN (SELECT rowid FROM bindle_name_fts WHERE bindle_name_fts MATCH ?)';
  const byName = `${columns} FROM invoices i INDEXED BY invoices_order WHERE i.name IN (${names})${and}`;
  const named = { sql: byName, params: [nameMatch, ...conditionParams] };
  if (restMatch === undefined) return { byName: named };
  // The invoices of the matching names are left out of the second part: no duplicates to remove.
  const byText = {
    sql: `${columns} FROM invoices i
      WHERE i.id IN (SELECT rowid FROM invoice_text_fts WHERE invoice_text_fts MATCH ?) AND i.name NOT IN (${names})${and}`,
    params: [restMatch, nameMatch, ...conditionParams],
    match: restMatch,
    plain: conditionParams.length === 0,
  };
  return { byName: named, byText };
}

/** Both parts of `matches` as one query (UNION ALL: the parts share no invoice), and its parameters. */
function allMatches(matches: Matches): { sql: string; params: unknown[] } {
  const { byName, byText } = matches;
  if (byText === undefined) return byName;
  return { sql: `${byName.sql} UNION ALL ${byText.sql}`, params: [...byName.params, ...byText.params] };
}

/** Length in Unicode code points, which is what the trigram tokenizer counts. */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** An FTS5 string literal: a phrase, which the trigram tokenizer matches as an exact substring. */
function ftsPhrase(term: string): string {
  return `"${term.replaceAll('"', '""')}"`;
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
 * The invoice index in SQLite. Synchronous underneath (better-sqlite3); the async interface
 * lets other implementations do I/O. One connection per instance; other processes may share
 * the file (WAL, busy timeout).
 */
/** The recently-read cache's key of name/version (a name holds no newline). */
export class SqliteInvoiceIndex implements InvoiceIndex {
  readonly path: string;
  /** True when terms of 3+ characters use the FTS5 trigram index. */
  readonly fullTextSearch: boolean;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** The number of invoices at a data version (see countAll). */
  private knownCount: { dataVersion: number; count: number } | undefined;
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

  private constructor(path: string, db: Database.Database, fullTextSearch: boolean, backgroundMerge: boolean) {
    this.path = path;
    this.db = db;
    this.fullTextSearch = fullTextSearch;
    this.backgroundMerge = backgroundMerge && fullTextSearch;
    this.scheduleMerge(FTS_MERGE_DELAY_MS);
  }

  /**
   * Opens (creating if needed, with its parent directory) the index file and brings its schema
   * up to date. Throws unavailable for a file written by a newer schema, or with a full-text
   * table this SQLite cannot maintain.
   */
  static open(path: string, options: SqliteInvoiceIndexOptions = {}): SqliteInvoiceIndex {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
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
      db.pragma(`cache_size = -${PAGE_CACHE_BYTES / 1024}`);
      const wanted = options.fullTextSearch ?? true;
      const fullText = wanted && hasTrigramFts(db);
      // Only a file that needs an upgrade takes the write lock: an up-to-date one opens without
      // waiting behind another process's write.
      if (!schemaUpToDate(db, fullText)) {
        migrate(db, path);
        setUpFullText(db, path, wanted, fullText);
      }
      db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      registerFunctions(db);
      return new SqliteInvoiceIndex(path, db, fullText, options.backgroundMerge ?? true);
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
      this.knownCount = undefined;
      const write = this.db.transaction(() => {
        for (const entry of entries) {
          if (this.statement('SELECT 1 FROM tombstones WHERE canonical_id = ?').get(entry.canonicalId) !== undefined) {
            if (options.replaceTombstone !== true) throw deletedError(entry.name, entry.version);
            this.statement('DELETE FROM tombstones WHERE canonical_id = ?').run(entry.canonicalId);
          }
        }
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

  /** After a failed insert: the first entry whose name/version is stored, or repeats an earlier entry's. */
  private takenEntry(entries: readonly StoredInvoice[]): StoredInvoice | undefined {
    const seen = new Set<string>();
    return entries.find((entry) => {
      const key = `${entry.name}\n${entry.version}`;
      if (seen.has(key)) return true;
      seen.add(key);
      return this.statement('SELECT 1 FROM invoices WHERE name = ? AND version = ?').get(entry.name, entry.version) !== undefined;
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
          const row = this.statement('SELECT id, yanked FROM invoices WHERE name = ? AND version = ?').get(entry.name, entry.version) as
            | { id: number; yanked: number }
            | undefined;
          if (row === undefined) throw new BindleError('not_found', `invoice ${entry.name}/${entry.version} does not exist`);
          if (row.yanked === 1) return false;
          this.statement('UPDATE invoices SET yanked = 1 WHERE id = ? AND yanked = 0').run(row.id);
          this.statement('UPDATE invoice_documents SET toml = ?, json = ? WHERE invoice_id = ?').run(entry.toml, entry.json, row.id);
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
          const removed = this.statement('DELETE FROM invoices WHERE name = ? AND version = ?').run(tombstone.name, tombstone.version);
          if (removed.changes === 0) throw new BindleError('not_found', `invoice ${tombstone.name}/${tombstone.version} does not exist`);
          this.statement('INSERT OR REPLACE INTO tombstones (canonical_id, name, version, deleted_at, record) VALUES (?, ?, ?, ?, ?)').run(
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
      const row = this.statement('SELECT canonical_id, name, version, deleted_at, record FROM tombstones WHERE name = ? AND version = ?').get(
        name,
        version,
      ) as TombstoneColumns | undefined;
      return row === undefined ? undefined : tombstoneOf(row);
    });
  }

  tombstones(): Promise<Tombstone[]> {
    return settle(() => {
      this.checkOpen();
      const rows = this.statement('SELECT canonical_id, name, version, deleted_at, record FROM tombstones ORDER BY name, version').all() as TombstoneColumns[];
      return rows.map(tombstoneOf);
    });
  }

  addTombstone(tombstone: Tombstone): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      checkTombstone(tombstone);
      return this.db
        .transaction(() => {
          if (this.statement('SELECT 1 FROM invoices WHERE name = ? AND version = ?').get(tombstone.name, tombstone.version) !== undefined) {
            throw new BindleError('already_exists', `invoice ${tombstone.name}/${tombstone.version} exists: it cannot have a tombstone`);
          }
          const written = this.statement('INSERT OR IGNORE INTO tombstones (canonical_id, name, version, deleted_at, record) VALUES (?, ?, ?, ?, ?)').run(
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

  query(q: InvoiceQuery): Promise<InvoiceQueryResult> {
    return settle(() => {
      this.checkOpen();
      checkPaging(q);
      const page = this.page(this.filterFor(q), q);
      return { total: page.total, invoices: this.documents(page.ids) };
    });
  }

  /** The total and the page's row ids of a query (see query). */
  private page(filter: Filter, q: InvoiceQuery): { total: number; ids: number[] } {
    const all = this.countAll();
    const matches = filter.indexed.length > 0 ? matchesOf(filter) : undefined;
    const total = matches === undefined ? this.countMatches(filter, all) : this.countMatched(matches, filter.unyanked);
    if (total <= q.offset) return { total, ids: [] };
    // Walking the order index finds the page after about (offset + limit) * all / total
    // entries. Without indexed terms, sorting reads each match's row, a walk only index
    // entries: walk unless it visits WALK_ADVANTAGE times more entries than there are matches.
    // With indexed terms, sorting reads only the matches' index entries, and a standard
    // query's walk reads rows: walk only when it visits WALK_ADVANTAGE times fewer.
    const expectedWalk = Math.ceil(((q.offset + q.limit) * all) / total);
    const walk = matches === undefined ? expectedWalk < WALK_ADVANTAGE * total : WALK_ADVANTAGE * expectedWalk < total;
    let ids: number[] | undefined;
    if (walk) {
      // The estimate assumes the matches are spread evenly in name order, but they are often
      // bunched (a name fragment matches one run of names, anywhere in the order). So the walk
      // visits at most WALK_SLACK times the expected entries; when that does not fill the
      // page, the matches are sorted instead, and a bunched query costs only that much extra.
      ids = this.walkPage(filter, q, Math.max(WALK_SLACK * expectedWalk, q.offset + q.limit));
      if (ids.length < Math.min(q.limit, total - q.offset)) ids = undefined;
    }
    if (ids === undefined && matches !== undefined) {
      const union = allMatches(matches);
      ids = this.values(`SELECT id FROM (${union.sql}) ORDER BY name, version_key DESC, version LIMIT ? OFFSET ?`).all(
        ...union.params,
        q.limit,
        q.offset,
      ) as number[];
    } else if (ids === undefined) {
      // `+i.name` keeps the planner on its best filtering index, then it sorts.
      const { where, params } = whereOf(filter);
      ids = this.values(
        `SELECT i.id FROM invoices i ${where} ORDER BY +i.name, i.version_key DESC, i.version LIMIT ? OFFSET ?`,
      ).all(...params, q.limit, q.offset) as number[];
    }
    return { total, ids };
  }

  /**
   * The stored invoices with these row ids, in this order, read with one statement (one per id
   * costs ~4× as much). A row another connection deleted since the ids were read is left out.
   */
  private documents(ids: readonly number[]): StoredInvoice[] {
    if (ids.length === 0) return [];
    const rows = this.statement(
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
    const changes = this.values('SELECT total_changes()');
    return FULL_TEXT_TABLES.some((table) => {
      const before = changes.get() as number;
      this.statement(`INSERT INTO ${table} (${table}, rank) VALUES ('merge', ${FTS_MERGE_PAGES})`).run();
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
      const rows = this.statement(
        `SELECT i.name, i.version, i.yanked FROM invoice_parcels p JOIN invoices i ON i.id = p.invoice_id
         WHERE p.sha256 = ? ORDER BY i.name, i.version_key DESC, i.version`,
      ).all(sha256) as Array<{ name: string; version: string; yanked: number }>;
      return rows.map((r) => ({ name: r.name, version: r.version, yanked: r.yanked === 1 }));
    });
  }

  ociManifest(name: string, version: string): Promise<OciManifestRecord | undefined> {
    return settle(() => {
      this.checkOpen();
      const row = this.statement(
        `${OCI_MANIFEST_SELECT} WHERE i.name = ? AND i.version = ? AND m.position = 0`,
      ).get(name, version) as OciManifestColumns | undefined;
      return row === undefined ? undefined : ociManifestRecord(row);
    });
  }

  ociManifestByDigest(name: string, digest: string): Promise<OciManifestRecord | undefined> {
    return settle(() => {
      this.checkOpen();
      const row = this.statement(`${OCI_MANIFEST_SELECT} WHERE m.digest = ? AND i.name = ? LIMIT 1`).get(digest, name) as
        | OciManifestColumns
        | undefined;
      return row === undefined ? undefined : ociManifestRecord(row);
    });
  }

  ociConfig(name: string, digest: string): Promise<Buffer | undefined> {
    return settle(() => {
      this.checkOpen();
      return this.values(
        'SELECT c.config FROM oci_configs c JOIN invoices i ON i.id = c.invoice_id WHERE c.digest = ? AND i.name = ? LIMIT 1',
      ).get(digest, name) as Buffer | undefined;
    });
  }

  ociTags(name: string, last: string | undefined, n: number): Promise<OciTagPage | undefined> {
    return settle(() => {
      this.checkOpen();
      if (this.values('SELECT 1 FROM invoices WHERE name = ? LIMIT 1').get(name) === undefined) return undefined;
      const tags = this.values(
        `SELECT c.tag FROM invoices i JOIN oci_configs c ON c.invoice_id = i.id
         WHERE i.name = ? AND i.yanked = 0 AND c.tag IS NOT NULL AND c.tag > ? ORDER BY c.tag LIMIT ?`,
      ).all(name, last ?? '', n + 1) as string[];
      return { tags: tags.slice(0, n), more: tags.length > n };
    });
  }

  ociReferrers(name: string, subject: string): Promise<OciManifestRecord[]> {
    return settle(() => {
      this.checkOpen();
      const rows = this.statement(
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
        this.statement('DELETE FROM oci_uploads WHERE updated_at < ?').run(expireBefore);
        try {
          this.statement('INSERT INTO oci_uploads (uuid, name, chunks, size, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)').run(
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
      const row = this.statement('SELECT uuid, name, chunks, size, created_at, updated_at FROM oci_uploads WHERE uuid = ?').get(uuid) as
        | Parameters<typeof uploadSessionOf>[0]
        | undefined;
      return row === undefined ? undefined : uploadSessionOf(row);
    });
  }

  appendOciUpload(uuid: string, offset: number, chunk: OciUploadChunk, updatedAt: number): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      checkUploadChunk(chunk);
      const result = this.statement(
        `UPDATE oci_uploads SET chunks = json_insert(chunks, '$[#]', json(?)), size = size + ?, updated_at = ?
         WHERE uuid = ? AND size = ?`,
      ).run(JSON.stringify({ sha256: chunk.sha256, size: chunk.size }), chunk.size, updatedAt, uuid, offset);
      return result.changes === 1;
    });
  }

  deleteOciUpload(uuid: string): Promise<boolean> {
    return settle(() => {
      this.checkOpen();
      return this.statement('DELETE FROM oci_uploads WHERE uuid = ?').run(uuid).changes === 1;
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
      return this.values('SELECT count(*) FROM invoices').get() as number;
    });
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.mergeTimer);
      this.mergeTimer = undefined;
      this.statements.clear();
      this.db.close();
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new BindleError('unavailable', `the invoice index ${this.path} is closed`);
  }

  /**
   * A prepared statement, prepared once per distinct SQL text. Query shapes vary with the
   * number of terms, so the cache is bounded (least recently used goes first).
   */
  private statement(sql: string): Database.Statement {
    return this.cached(sql, false);
  }

  /** Like statement, for a query whose rows are single values (better-sqlite3 pluck mode). */
  private values(sql: string): Database.Statement {
    return this.cached(sql, true);
  }

  private cached(sql: string, pluck: boolean): Database.Statement {
    const key = `${pluck ? 'values' : 'rows'}:${sql}`;
    let stmt = this.statements.get(key);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      if (pluck) stmt.pluck();
      if (this.statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.statements.keys().next();
        if (oldest.done !== true) this.statements.delete(oldest.value);
      }
    } else {
      this.statements.delete(key);
    }
    this.statements.set(key, stmt);
    return stmt;
  }

  /** `PRAGMA data_version`: changes whenever another connection commits. */
  private dataVersion(): number {
    this.dataVersionStatement ??= this.db.prepare('PRAGMA data_version').pluck();
    return this.dataVersionStatement.get() as number;
  }

  /** Drops what this connection remembers of earlier reads (the count, recent invoices) before a write that changes them. */
  private forgetReads(): void {
    this.knownCount = undefined;
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
   * Number of invoices. Counting reads a whole index, so the count is kept until this
   * connection writes (insert, yank) or another connection commits (`PRAGMA data_version`).
   */
  private countAll(): number {
    const dataVersion = this.dataVersion();
    if (this.knownCount?.dataVersion !== dataVersion) {
      this.knownCount = { dataVersion, count: this.values('SELECT count(*) FROM invoices').get() as number };
    }
    return this.knownCount.count;
  }

  /**
   * The page of matches found by walking at most `budget` entries of the order index (the
   * first `budget` invoices in query order). Shorter than the page when the budget ran out.
   */
  private walkPage(filter: Filter, q: InvoiceQuery, budget: number): number[] {
    const { where, params } = whereOf(filter);
    const text = filter.column === 'search_text' ? ', search_text' : '';
    return this.values(
      `SELECT i.id FROM (
         SELECT id, name, version_key, version, yanked, prerelease, semver_safe, major, minor, patch${text}
         FROM invoices INDEXED BY invoices_order ORDER BY name, version_key DESC, version LIMIT ?
       ) AS i ${where} ORDER BY i.name, i.version_key DESC, i.version LIMIT ? OFFSET ?`,
    ).all(budget, ...params, q.limit, q.offset) as number[];
  }

  /**
   * How many invoices `matches` holds. The second part of a standard query reads a row per
   * match, so it is counted only when both parts have matches; when only it has, and yanked is
   * its only condition, the full-text count less its yanked matches (a small partial index)
   * reads no rows.
   */
  private countMatched(matches: Matches, unyanked: boolean): number {
    const count = (sql: string, ...params: unknown[]): number => this.values(sql).get(...params) as number;
    const named = count(`SELECT count(*) FROM (${matches.byName.sql})`, ...matches.byName.params);
    const text = matches.byText;
    if (text === undefined) return named;
    const rest = count('SELECT count(*) FROM invoice_text_fts WHERE invoice_text_fts MATCH ?', text.match);
    if (rest === 0) return named;
    if (named > 0 || !text.plain) return named + count(`SELECT count(*) FROM (${text.sql})`, ...text.params);
    if (!unyanked) return rest;
    return (
      rest -
      count(
        `SELECT count(*) FROM invoice_text_fts f JOIN invoices i INDEXED BY invoices_yanked ON i.id = f.rowid AND i.yanked = 1
         WHERE invoice_text_fts MATCH ?`,
        text.match,
      )
    );
  }

  /**
   * How many invoices a filter without indexed terms matches. Yanked invoices are few, so
   * without other conditions it is cheaper to subtract the yanked ones (a small partial index)
   * than to look at every row.
   */
  private countMatches(filter: Filter, all: number): number {
    const count = (sql: string, ...params: unknown[]): number => this.values(sql).get(...params) as number;
    if (filter.clauses.length > 0) {
      const { where, params } = whereOf(filter);
      return count(`SELECT count(*) FROM invoices i ${where}`, ...params);
    }
    return filter.unyanked ? all - count('SELECT count(*) FROM invoices WHERE yanked = 1') : all;
  }

  /**
   * Inserts the invoices' rows and details, ROWS_PER_INSERT rows per statement (the full-text
   * trigger costs far less per row within one statement than once per statement); runs inside
   * a write transaction.
   */
  private insertRows(entries: readonly StoredInvoice[]): void {
    const prepare = (sql: string): Database.Statement => this.statement(sql);
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
      'INSERT OR IGNORE INTO invoice_parcels (invoice_id, sha256)',
      stored.flatMap(({ id, entry }) => (entry.invoice.parcel ?? []).map((p) => [id, p.label.sha256])),
    );
    writeOci(prepare, stored);
  }

  /** The WHERE clauses for a query. Cheap, index-friendly clauses come first. */
  private filterFor(q: InvoiceQuery): Filter {
    const { column, terms } = queryMatch(q);
    const indexed = this.fullTextSearch ? terms.filter((term) => codePoints(term) >= TRIGRAM) : [];
    const filter: Filter = { unyanked: !q.yanked, column, indexed, clauses: [], params: [] };
    for (const term of terms) {
      if (indexed.includes(term)) continue;
      filter.clauses.push(`instr(i.${column}, ?) > 0`);
      filter.params.push(term);
    }

    const version = versionFilter(q.version);
    if (version === undefined) return filter;
    if (version.kind === 'exact') {
      filter.clauses.push('i.version_key = ?', 'i.version = ?');
      filter.params.push(version.key, version.version);
      return filter;
    }
    if (version.lower !== undefined) {
      filter.clauses.push('i.version_key >= ?');
      filter.params.push(version.lower);
    }
    if (version.upper !== undefined) {
      filter.clauses.push('i.version_key <= ?');
      filter.params.push(version.upper);
    }
    filter.clauses.push(
      `((i.semver_safe = 1 AND ${version.exact.sql}) OR (i.semver_safe = 0 AND bindle_semver_satisfies(i.version, ?)))`,
    );
    filter.params.push(...version.exact.params, version.range.range);
    return filter;
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

/** SQL functions the queries use. */
function registerFunctions(db: Database.Database): void {
  // Parsing a range is the costly part; a query calls this once per candidate row with the same range.
  let lastText = '';
  let lastRange: semver.Range | undefined;
  db.function('bindle_semver_satisfies', { deterministic: true }, (version: unknown, range: unknown): number => {
    if (typeof version !== 'string' || typeof range !== 'string') return 0;
    if (lastRange === undefined || range !== lastText) {
      lastRange = new semver.Range(range);
      lastText = range;
    }
    return semver.satisfies(version, lastRange) ? 1 : 0;
  });
}
