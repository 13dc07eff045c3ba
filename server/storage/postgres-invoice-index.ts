/**
 * The invoice index in PostgreSQL (node-postgres `pg`, imported only when this index is opened):
 * versioned migrations run under an advisory lock, so replicas may start together; atomic
 * inserts and compare-and-set yanks; `/_q` queries in SQL — substring terms with `LIKE` on
 * pg_trgm GIN indexes, SemVer filters on order-preserving version keys (invoice-index-versions.ts)
 * and name/SemVer paging. Invoice GETs are served from a cache that LISTEN/NOTIFY keeps
 * correct across replicas: every yank and delete notifies, every instance clears its cache on it;
 * the listening connection is checked with a query every fifth of `listenerTimeoutMs`, and the
 * cache is trusted only while a check has answered within that time. Every statement but the
 * migrations' is bounded by `queryTimeoutMs`, after which it fails as unavailable.
 */
import type { Client, ClientBase, ClientConfig, Notification, Pool, PoolClient } from 'pg';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { OCI_MANIFEST_SELECT, ociManifestRecord, ociRowsOf, type OciManifestColumns, type OciManifestRecord, type OciTagPage } from './oci-records.js';
import { checkUploadChunk, uploadSessionOf, type OciUploadChunk, type OciUploadSession } from './oci-uploads.js';
import { blobLinkOf, checkBlobLink, checkPageSize, type BlobLinkRow, type OciBlobLink, type OciRepositoryPage } from './oci-blob-links.js';
import type { InsertOptions, InvoiceIndex, InvoiceQuery, InvoiceQueryResult, StoredInvoice, Tombstone } from './invoice-index.js';
import { recentInvoiceCache, recentKey } from './recent-invoices.js';
import {
  checkEntry, checkPaging, checkTombstone, checkYankEntry, deletedError, queryMatch, searchText, sizeMismatchError, storedInvoice, tombstoneOf,
  type InvoiceColumns, type TombstoneColumns,
} from './invoice-index-rules.js';
import { numberPlaceholders, satisfies, versionFilter } from './invoice-index-versions.js';
import { versionParts } from './semver-order.js';

/** How PostgresInvoiceIndex.open connects. */
export interface PostgresInvoiceIndexOptions {
  /**
   * Schema holding the tables (default `public`), created if missing: one database can hold
   * several indexes. Lowercase letters, digits and `_`, starting with a letter or `_`.
   */
  schema?: string;
  /** Connections in the pool (default 10), plus one that listens for notifications. */
  poolSize?: number;
  /**
   * The longest the cache may miss other instances' writes when the listening connection dies
   * without a sign (a route or host gone: no FIN or RST, so no error until TCP gives up, which
   * takes minutes); default LISTENER_TIMEOUT_MS. The connection runs `SELECT 1` every fifth of
   * it; the cache is trusted only while the last check that answered was sent less than this
   * long ago, and a check unanswered for this long drops the connection (then it listens again).
   */
  listenerTimeoutMs?: number;
  /**
   * The longest a statement, a transaction's statement or a wait for a pooled connection may
   * take before it fails as unavailable and its connection is dropped (default
   * QUERY_TIMEOUT_MS). Without it, a statement sent on a connection that died without a sign
   * waits for TCP to give up, which takes minutes. Migrations at open are not bounded by it:
   * building an index on a big table may take longer.
   */
  queryTimeoutMs?: number;
}

/** Default of PostgresInvoiceIndexOptions.listenerTimeoutMs. */
export const LISTENER_TIMEOUT_MS = 5000;
/** Default of PostgresInvoiceIndexOptions.queryTimeoutMs. */
export const QUERY_TIMEOUT_MS = 30_000;

/**
 * Schema migrations: element i takes the schema from version i to i + 1. Append only. Search
 * needs the pg_trgm extension (trusted since PostgreSQL 13: a database owner may create it);
 * it lives in `public`, which stays on every connection's search path.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE invoices (
    id bigserial PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    -- semver-order.ts versionSortKey: byte order = SemVer precedence
    version_key text COLLATE "C" NOT NULL,
    major bigint NOT NULL,
    minor bigint NOT NULL,
    patch bigint NOT NULL,
    prerelease boolean NOT NULL,
    -- the semver package reads every number exactly, so ranges can be checked on version_key
    semver_safe boolean NOT NULL,
    canonical_id text NOT NULL UNIQUE,
    yanked boolean NOT NULL,
    created_at bigint NOT NULL,
    -- invoice-index-rules.ts searchText (standard search)
    search_text text NOT NULL,
    toml text NOT NULL,
    json text NOT NULL,
    UNIQUE (name, version)
  );
  -- the query order; covers the unfiltered walk and the yanked filter (index-only scans)
  CREATE INDEX invoices_order ON invoices (name, version_key DESC, version) INCLUDE (yanked, id);
  CREATE INDEX invoices_by_version ON invoices (version_key);
  CREATE INDEX invoices_name_trgm ON invoices USING gin (name gin_trgm_ops);
  CREATE INDEX invoices_search_trgm ON invoices USING gin (search_text gin_trgm_ops);
  CREATE INDEX invoices_semver_unsafe ON invoices (version) WHERE NOT semver_safe;
  CREATE TABLE invoice_parcels (
    invoice_id bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    sha256 text NOT NULL,
    PRIMARY KEY (invoice_id, sha256)
  );
  CREATE INDEX invoice_parcels_sha256 ON invoice_parcels (sha256);
  `,
  // The OCI form of each invoice (oci-records.ts): written with it, never changed.
  `
  CREATE TABLE oci_configs (
    invoice_id bigint PRIMARY KEY REFERENCES invoices (id) ON DELETE CASCADE,
    -- the version as an OCI tag (+ -> _); NULL when it cannot be one
    tag text COLLATE "C",
    digest text NOT NULL,
    config bytea NOT NULL
  );
  CREATE INDEX oci_configs_digest ON oci_configs (digest);
  CREATE TABLE oci_manifests (
    invoice_id bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    -- 0 = the bindle's manifest, n = the referrer of the n-th signature
    position integer NOT NULL,
    digest text NOT NULL,
    manifest bytea NOT NULL,
    PRIMARY KEY (invoice_id, position)
  );
  CREATE INDEX oci_manifests_digest ON oci_manifests (digest);
  `,
  `
  -- hard deletes (InvoiceIndex.delete): a re-create of the id is refused while its tombstone exists
  CREATE TABLE tombstones (
    canonical_id text PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    deleted_at bigint NOT NULL,
    record text NOT NULL,
    UNIQUE (name, version)
  );
  `,
  `
  -- OCI blob upload sessions (oci-uploads.ts): chunks = array of {"sha256","size"} in order
  CREATE TABLE oci_uploads (
    uuid text PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    chunks jsonb NOT NULL,
    size bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );
  CREATE INDEX oci_uploads_updated ON oci_uploads (updated_at);
  `,
  `
  -- Search reads the trigram indexes directly: with GIN's fast update, new rows wait in a
  -- pending list (up to gin_pending_list_limit, 4 MB) that every search scans in full until a
  -- vacuum; a server fed invoices one at a time would always have one. Its entries move now.
  ALTER INDEX invoices_name_trgm SET (fastupdate = off);
  ALTER INDEX invoices_search_trgm SET (fastupdate = off);
  SELECT gin_clean_pending_list('invoices_name_trgm'::regclass), gin_clean_pending_list('invoices_search_trgm'::regclass);
  `,
  `
  -- OCI blob links (oci-blob-links.ts): blob sha256 was uploaded to or mounted into repository
  -- name, at linked_at (the latest such, in ms). Independent of invoices: a link may come first.
  CREATE TABLE oci_blob_links (
    name text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    linked_at bigint NOT NULL,
    PRIMARY KEY (name, sha256)
  );
  CREATE INDEX oci_blob_links_sha256 ON oci_blob_links (sha256, name);
  `,
  `
  -- The size each invoice's label gives the parcel (InvoiceIndex.insert refuses another size for
  -- a listed parcel), filled from the stored invoice records; NULL only where a record gives none.
  -- The index on (sha256, size) finds a listing of another size with two range probes.
  ALTER TABLE invoice_parcels ADD COLUMN size bigint;
  UPDATE invoice_parcels ip SET size = (
    SELECT min((p -> 'label' ->> 'size')::bigint)
    FROM invoices i, jsonb_array_elements(coalesce(i.json::jsonb -> 'parcel', '[]'::jsonb)) p
    WHERE i.id = ip.invoice_id AND p -> 'label' ->> 'sha256' = ip.sha256
  );
  DROP INDEX invoice_parcels_sha256;
  CREATE INDEX invoice_parcels_sha256 ON invoice_parcels (sha256, size);
  `,
];

/**
 * Advisory lock class (with a bucket of parcels as the second key) taken by an insert for each
 * bucket its parcels fall in, so that concurrent inserts listing one parcel check its size one
 * after another. Parcels are hashed into PARCEL_SIZE_BUCKETS buckets, so an insert takes at most
 * that many locks however many parcels it lists (each lock holds a slot of the server's shared
 * lock table, max_locks_per_transaction × max_connections, until the transaction ends).
 */
const PARCEL_SIZE_LOCK = 0x62696e64;
const PARCEL_SIZE_BUCKETS = 16;

/**
 * Throws size_mismatch when an entry gives a parcel another size than a stored invoice lists it
 * with, or than an earlier entry of `entries` (InvoiceIndex.insert). Inside the insert's
 * transaction: first locks the buckets of every listed parcel (PARCEL_SIZE_LOCK, in one order, so
 * two inserts cannot deadlock), then one statement finds, per parcel, the nearest stored size below and above
 * the entry's (two probes of invoice_parcels_sha256).
 */
async function checkParcelSizes(client: PoolClient, entries: readonly StoredInvoice[]): Promise<void> {
  const listed = new Map<string, { size: number; name: string; version: string }>();
  for (const entry of entries) {
    for (const { label } of entry.invoice.parcel ?? []) {
      const earlier = listed.get(label.sha256);
      if (earlier === undefined) listed.set(label.sha256, { size: label.size, name: entry.name, version: entry.version });
      else if (earlier.size !== label.size) throw sizeMismatchError(entry, label.sha256, label.size, earlier);
    }
  }
  if (listed.size === 0) return;
  const sha256s = [...listed.keys()];
  await client.query(
    'SELECT count(pg_advisory_xact_lock($1, k)) FROM (SELECT DISTINCT hashtext(s) & ($3::int - 1) AS k FROM unnest($2::text[]) s ORDER BY k) l',
    [PARCEL_SIZE_LOCK, sha256s, PARCEL_SIZE_BUCKETS],
  );
  const { rows } = await client.query<{ sha256: string; size: string; name: string; version: string }>(
    `SELECT n.sha256, p.size, i.name, i.version
     FROM unnest($1::text[], $2::bigint[]) AS n (sha256, size)
     CROSS JOIN LATERAL (
       (SELECT invoice_id, size FROM invoice_parcels WHERE sha256 = n.sha256 AND size < n.size ORDER BY size LIMIT 1)
       UNION ALL
       (SELECT invoice_id, size FROM invoice_parcels WHERE sha256 = n.sha256 AND size > n.size ORDER BY size LIMIT 1)
       LIMIT 1
     ) p
     JOIN invoices i ON i.id = p.invoice_id
     LIMIT 1`,
    [sha256s, sha256s.map((sha256) => listed.get(sha256)?.size ?? 0)],
  );
  const found = rows[0];
  if (found === undefined) return;
  const mine = listed.get(found.sha256);
  if (mine === undefined) throw new Error(`parcel ${found.sha256} was not asked about`);
  throw sizeMismatchError(mine, found.sha256, mine.size, found);
}

/** The notification channel; the payload is the schema whose invoices changed. */
const CHANNEL = 'bindle_invoice_index';
/** Advisory lock key (any fixed number) serializing migrations of every schema in a database. */
const MIGRATION_LOCK = 0x62696e646c65;
/** Wait before reconnecting a lost listener connection (the cache is off meanwhile). */
const RELISTEN_MS = 500;

const COLUMNS = 'i.name, i.version, i.canonical_id, i.yanked, i.created_at, i.toml, i.json';
/**
 * The order of every list of invoices (by name, then newest version first; `version` breaks ties
 * of equal precedence), over a table or CTE aliased `i`: both `_q` paths and the parcel's
 * invoices sort by it, so they cannot disagree.
 */
const INVOICE_ORDER = 'i.name, i.version_key DESC, i.version';


/**
 * Up to this many matches, a query finds, counts and sorts them in one statement (see
 * fewMatchesPage); past it, the count and the page are separate statements.
 */
export const FEW_MATCHES = 4096;

type PgModule = (typeof import('pg'))['default'];

/** The columns an insert writes to `invoices`, with their SQL types, in invoiceRow's order. */
const INVOICE_COLUMNS = [
  ['name', 'text'], ['version', 'text'], ['version_key', 'text'], ['major', 'bigint'], ['minor', 'bigint'], ['patch', 'bigint'],
  ['prerelease', 'boolean'], ['semver_safe', 'boolean'], ['canonical_id', 'text'], ['yanked', 'boolean'], ['created_at', 'bigint'],
  ['search_text', 'text'], ['toml', 'text'], ['json', 'text'],
] as const;

/** The values of an entry's `invoices` row, in INVOICE_COLUMNS order: the one place that builds them. */
function invoiceRow(entry: StoredInvoice): unknown[] {
  const parts = versionParts(entry.version);
  return [
    entry.name, entry.version, parts.key, parts.major, parts.minor, parts.patch, parts.prerelease.length > 0,
    parts.semverSafe, entry.canonicalId, entry.yanked, entry.createdAt, searchText(entry.invoice), entry.toml, entry.json,
  ];
}

/**
 * Writes the OCI rows (oci-records.ts ociRowsOf) of each invoice row `id` in two statements;
 * rows already there are kept.
 */
async function writeOci(client: ClientBase, invoices: ReadonlyArray<{ id: string; entry: StoredInvoice }>): Promise<void> {
  if (invoices.length === 0) return;
  const configs = { ids: [] as string[], tags: [] as Array<string | null>, digests: [] as string[], configs: [] as Buffer[] };
  const manifests = { ids: [] as string[], positions: [] as number[], digests: [] as string[], bytes: [] as Buffer[] };
  for (const { id, entry } of invoices) {
    const rows = ociRowsOf(entry);
    configs.ids.push(id);
    configs.tags.push(rows.tag);
    configs.digests.push(rows.configDigest);
    configs.configs.push(rows.config);
    for (const m of rows.manifests) {
      manifests.ids.push(id);
      manifests.positions.push(m.position);
      manifests.digests.push(m.digest);
      manifests.bytes.push(m.bytes);
    }
  }
  await client.query(
    `INSERT INTO oci_configs (invoice_id, tag, digest, config)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[]) ON CONFLICT DO NOTHING`,
    [configs.ids, configs.tags, configs.digests, configs.configs],
  );
  await client.query(
    `INSERT INTO oci_manifests (invoice_id, position, digest, manifest)
     SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::bytea[]) ON CONFLICT DO NOTHING`,
    [manifests.ids, manifests.positions, manifests.digests, manifests.bytes],
  );
}

/**
 * The schema version whose migration added the OCI tables. Every insert at or above it writes
 * OCI rows (a server that knows fewer versions refuses the schema), so only a schema migrated
 * from below it has invoices without them.
 */
const OCI_TABLES_VERSION = 2;

/**
 * Writes the OCI rows of invoices stored before the OCI tables existed, from their current TOML
 * (run in the migration from below OCI_TABLES_VERSION, under its lock; deterministic, so replicas
 * agree). Not at every open: it reads every invoice.
 */
async function backfillOci(client: ClientBase): Promise<void> {
  const { rows } = await client.query<InvoiceColumns & { id: string }>(
    `SELECT i.id, ${COLUMNS} FROM invoices i WHERE NOT EXISTS (SELECT 1 FROM oci_configs c WHERE c.invoice_id = i.id)`,
  );
  await writeOci(client, rows.map((row) => ({ id: row.id, entry: storedInvoice(row) })));
}


/** A LIKE pattern matching `term` anywhere (`\` is LIKE's default escape character). */
function containsPattern(term: string): string {
  return `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * Runs `body` between BEGIN and COMMIT on `client`; on any error rolls back and rethrows it,
 * calling `rollbackFailed` first when the ROLLBACK failed too (the connection is then unusable).
 */
async function inTransaction<C extends ClientBase, T>(client: C, body: (client: C) => Promise<T>, rollbackFailed: () => void): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await body(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(rollbackFailed);
    throw err;
  }
}

/**
 * What node-postgres says, without an error code, when a connection is lost or a timeout of ours
 * expires (a statement, a connection attempt, a wait for a pooled connection).
 */
const CONNECTION_LOST = /^(Query read timeout|timeout expired|timeout exceeded when trying to connect|Connection terminated( unexpectedly| due to connection timeout)?|Client has encountered a connection error and is not queryable)$/;

/** Errors of the database connection itself become unavailable (503); others pass through. */
function asBindleError(err: unknown, what: string): unknown {
  if (isBindleError(err)) return err;
  const code = pgCode(err) ?? '';
  if (
    code.startsWith('08') || code.startsWith('57P') || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE'].includes(code) ||
    (code === '' && err instanceof Error && CONNECTION_LOST.test(err.message))
  ) {
    return new BindleError('unavailable', `the invoice index database is unavailable (${what}): ${(err as Error).message}`, { cause: err });
  }
  return err;
}

function quoteIdent(name: string): string {
  return `"${name}"`;
}

/**
 * The invoice index in PostgreSQL. Any number of instances, in any number of processes, may
 * share one database schema: every decision is a single statement or transaction there.
 */
export class PostgresInvoiceIndex implements InvoiceIndex {
  readonly schema: string;
  private readonly pg: PgModule;
  private readonly pool: Pool;
  private readonly clientConfig: ClientConfig;
  private listener: Client | undefined;
  /** True while the listener is subscribed: only then are read invoices kept in the cache. */
  private listening = false;
  /**
   * When (performance.now()) the listener subscribed, then when its last check that answered was
   * sent: PostgreSQL sends a session's pending notifications before its reply to a query, so
   * every yank or delete committed before then has reached the cache. The cache is used while
   * it is recent.
   */
  private confirmedAt = Number.NEGATIVE_INFINITY;
  private readonly listenerTimeoutMs: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** Bumped on every invalidation, so that a read that raced one is not cached. */
  private generation = 0;
  /** Invoices read recently (bounded as recent-invoices.ts says), trusted while `listening`. */
  private readonly recent = recentInvoiceCache();
  private relistenTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(pg: PgModule, pool: Pool, clientConfig: ClientConfig, schema: string, listenerTimeoutMs: number) {
    this.pg = pg;
    this.pool = pool;
    this.clientConfig = clientConfig;
    this.schema = schema;
    this.listenerTimeoutMs = listenerTimeoutMs;
  }

  /**
   * Connects, brings the schema up to date (idempotent; concurrent openers wait for each other
   * on an advisory lock) and starts listening for other instances' writes. Throws unavailable
   * when the database cannot be reached or has a newer schema, invalid_config for a bad URL or
   * schema name.
   */
  static async open(url: string, options: PostgresInvoiceIndexOptions = {}): Promise<PostgresInvoiceIndex> {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new BindleError('invalid_config', 'a PostgreSQL index URL starts with postgres:// or postgresql://');
    }
    const schema = options.schema ?? 'public';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new BindleError('invalid_config', `invalid PostgreSQL schema name ${JSON.stringify(schema)}: lowercase letters, digits and _`);
    }
    const listenerTimeoutMs = options.listenerTimeoutMs ?? LISTENER_TIMEOUT_MS;
    const queryTimeoutMs = options.queryTimeoutMs ?? QUERY_TIMEOUT_MS;
    for (const [what, ms] of [['listener', listenerTimeoutMs], ['query', queryTimeoutMs]] as const) {
      if (!Number.isInteger(ms) || ms < 50) {
        throw new BindleError('invalid_config', `the ${what} timeout must be a whole number of milliseconds of at least 50, not ${ms}`);
      }
    }
    const pg = (await import('pg')).default;
    // Every connection starts with the schema first on its search path (set at connection start-up).
    const clientConfig: ClientConfig = {
      connectionString: url,
      application_name: 'bindle-server',
      options: `-c search_path=${quoteIdent(schema)},public`,
    };
    const pool = new pg.Pool({
      ...clientConfig,
      max: options.poolSize ?? 10,
      // pg fails a statement unanswered this long, and the pool then drops its connection.
      query_timeout: queryTimeoutMs,
      connectionTimeoutMillis: queryTimeoutMs,
    });
    // An idle connection that breaks is dropped by the pool; the error must not crash the process.
    pool.on('error', () => undefined);
    const index = new PostgresInvoiceIndex(pg, pool, clientConfig, schema, listenerTimeoutMs);
    try {
      await index.migrate(queryTimeoutMs);
      await index.listen();
    } catch (err) {
      await index.close();
      throw asBindleError(err, 'open');
    }
    return index;
  }

  insert(entry: StoredInvoice, options: InsertOptions = {}): Promise<void> {
    return this.insertMany([entry], options);
  }

  /**
   * Inserts every entry in one transaction, all or none (already_exists when one is taken or the
   * batch holds an id twice, deleted when one is tombstoned and `options.replaceTombstone` is not
   * set), each table written by one multi-row statement: the bulk load of an import or a
   * benchmark seed. insert is a batch of one.
   */
  async insertMany(entries: readonly StoredInvoice[], options: InsertOptions = {}): Promise<void> {
    this.checkOpen();
    entries.forEach(checkEntry);
    const ids = entries.map((e) => e.canonicalId);
    const twice = entries.find((e, i) => ids.indexOf(e.canonicalId) !== i);
    if (twice !== undefined) throw new BindleError('already_exists', `invoice ${twice.name}/${twice.version} is twice in one batch`);
    if (entries.length === 0) return;
    try {
      await this.transaction(async (client) => {
        // Locks the tombstones (if any) against a racing delete's replacement until commit.
        const tombstoned = await client.query<{ name: string; version: string }>(
          'SELECT name, version FROM tombstones WHERE canonical_id = ANY($1::text[]) ORDER BY canonical_id FOR UPDATE',
          [ids],
        );
        const first = tombstoned.rows[0];
        if (first !== undefined) {
          if (options.replaceTombstone !== true) throw deletedError(first.name, first.version);
          await client.query('DELETE FROM tombstones WHERE canonical_id = ANY($1::text[])', [ids]);
        }
        const taken = await client.query<{ name: string; version: string }>('SELECT name, version FROM invoices WHERE canonical_id = ANY($1::text[]) LIMIT 1', [ids]);
        const existing = taken.rows[0];
        if (existing !== undefined) throw new BindleError('already_exists', `invoice ${existing.name}/${existing.version} already exists`);
        await checkParcelSizes(client, entries);
        const columns = INVOICE_COLUMNS.map(() => [] as unknown[]);
        for (const entry of entries) invoiceRow(entry).forEach((value, c) => columns[c]?.push(value));
        const { rows } = await client.query<{ id: string; canonical_id: string }>(
          `INSERT INTO invoices (${INVOICE_COLUMNS.map(([name]) => name).join(', ')})
           SELECT * FROM unnest(${INVOICE_COLUMNS.map(([, type], c) => `$${c + 1}::${type}[]`).join(', ')})
           RETURNING id, canonical_id`,
          columns,
        );
        const idOf = new Map(rows.map((r) => [r.canonical_id, r.id]));
        const inserted = entries.map((entry) => ({ id: idOf.get(entry.canonicalId) ?? '', entry }));
        // checkParcelSizes made each parcel's size one within the batch.
        const parcels = inserted.flatMap(({ id, entry }) =>
          [...new Map((entry.invoice.parcel ?? []).map((p) => [p.label.sha256, p.label.size])).entries()].map(([sha256, size]) => ({ id, sha256, size })),
        );
        if (parcels.length > 0) {
          await client.query('INSERT INTO invoice_parcels (invoice_id, sha256, size) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])', [
            parcels.map((p) => p.id), parcels.map((p) => p.sha256), parcels.map((p) => p.size),
          ]);
        }
        await writeOci(client, inserted);
      });
    } catch (err) {
      if (pgCode(err) === '23505') {
        const what = entries.length === 1 ? `invoice ${entries[0]?.name}/${entries[0]?.version}` : 'an invoice of the batch';
        throw new BindleError('already_exists', `${what} already exists`, { cause: err });
      }
      throw asBindleError(err, 'insert');
    }
  }

  get(name: string, version: string): Promise<StoredInvoice | undefined> {
    return this.recentInvoice(name, version, false);
  }

  lookup(name: string, version: string): Promise<StoredInvoice | Tombstone | undefined> {
    return this.recentInvoice(name, version, true);
  }

  /** The recently-read cache's entry while it is trusted (as get() and lookup() trust it: `trusted()`). */
  cachedInvoice(name: string, version: string): StoredInvoice | undefined {
    if (this.closed || !this.trusted()) return undefined;
    return this.recent.get(recentKey(name, version));
  }

  /** Whether the cache has every other instance's writes: subscribed, and the listener checked recently. */
  private trusted(): boolean {
    return this.listening && performance.now() - this.confirmedAt < this.listenerTimeoutMs;
  }

  /**
   * get() and lookup(): from the cache while it is trusted (a hit hands out the same
   * object again, so what it parsed and what callers keyed on it are reused; callers must not
   * change it), else one query; with `withTombstone` that query also reads the tombstone
   * (never cached) when there is no invoice.
   */
  private async recentInvoice(name: string, version: string, withTombstone: false): Promise<StoredInvoice | undefined>;
  private async recentInvoice(name: string, version: string, withTombstone: boolean): Promise<StoredInvoice | Tombstone | undefined>;
  private async recentInvoice(name: string, version: string, withTombstone: boolean): Promise<StoredInvoice | Tombstone | undefined> {
    this.checkOpen();
    const key = recentKey(name, version);
    if (this.trusted()) {
      const hit = this.recent.get(key);
      if (hit !== undefined) return hit;
    }
    const generation = this.generation;
    const sql = withTombstone
      ? `SELECT false AS tombstone, ${COLUMNS}, NULL::bigint AS deleted_at, NULL::text AS record FROM invoices i WHERE i.name = $1 AND i.version = $2
         UNION ALL
         SELECT true, t.name, t.version, t.canonical_id, NULL, NULL, NULL, NULL, t.deleted_at, t.record FROM tombstones t WHERE t.name = $1 AND t.version = $2
         ORDER BY 1 LIMIT 1`
      : `SELECT false AS tombstone, ${COLUMNS} FROM invoices i WHERE i.name = $1 AND i.version = $2`;
    const row = (await this.rows<InvoiceColumns & Partial<TombstoneColumns> & { tombstone: boolean }>(sql, [name, version], withTombstone ? 'lookup' : 'get'))[0];
    if (row === undefined) return undefined;
    if (row.tombstone) return tombstoneOf({ ...row, deleted_at: row.deleted_at ?? 0, record: row.record ?? '' });
    const stored = storedInvoice(row);
    if (this.listening && generation === this.generation) this.recent.set(key, stored);
    return stored;
  }

  async yank(entry: StoredInvoice): Promise<boolean> {
    this.checkOpen();
    checkYankEntry(entry);
    try {
      const yanked = await this.transaction(async (client) => {
        const result = await client.query(
          'UPDATE invoices SET yanked = true, toml = $3, json = $4 WHERE name = $1 AND version = $2 AND NOT yanked',
          [entry.name, entry.version, entry.toml, entry.json],
        );
        if (result.rowCount === 1) {
          // Delivered to every listener (this one too) when the transaction commits.
          await client.query('SELECT pg_notify($1, $2)', [CHANNEL, this.schema]);
          return true;
        }
        const exists = await client.query('SELECT 1 FROM invoices WHERE name = $1 AND version = $2', [entry.name, entry.version]);
        if (exists.rowCount === 0) throw new BindleError('not_found', `invoice ${entry.name}/${entry.version} does not exist`);
        return false;
      });
      if (yanked) this.invalidate();
      return yanked;
    } catch (err) {
      throw asBindleError(err, 'yank');
    }
  }

  async delete(tombstone: Tombstone): Promise<void> {
    this.checkOpen();
    checkTombstone(tombstone);
    try {
      await this.transaction(async (client) => {
        // The links of the name to what the invoice lists, while its rows still say what that is.
        await client.query(
          `DELETE FROM oci_blob_links WHERE name = $1 AND sha256 IN (
             SELECT p.sha256 FROM invoice_parcels p JOIN invoices i ON i.id = p.invoice_id WHERE i.name = $1 AND i.version = $2
             UNION ALL SELECT substr(c.digest, 8) FROM oci_configs c JOIN invoices i ON i.id = c.invoice_id WHERE i.name = $1 AND i.version = $2)`,
          [tombstone.name, tombstone.version],
        );
        const removed = await client.query('DELETE FROM invoices WHERE name = $1 AND version = $2', [tombstone.name, tombstone.version]);
        if (removed.rowCount !== 1) throw new BindleError('not_found', `invoice ${tombstone.name}/${tombstone.version} does not exist`);
        await client.query(
          `INSERT INTO tombstones (canonical_id, name, version, deleted_at, record) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (canonical_id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at, record = EXCLUDED.record`,
          [tombstone.canonicalId, tombstone.name, tombstone.version, tombstone.deletedAt, tombstone.record],
        );
        // Delivered to every listener (this one too) when the transaction commits.
        await client.query('SELECT pg_notify($1, $2)', [CHANNEL, this.schema]);
      });
      this.invalidate();
    } catch (err) {
      throw asBindleError(err, 'delete');
    }
  }

  async tombstone(name: string, version: string): Promise<Tombstone | undefined> {
    this.checkOpen();
    const rows = await this.rows<TombstoneColumns>(
      'SELECT canonical_id, name, version, deleted_at, record FROM tombstones WHERE name = $1 AND version = $2',
      [name, version],
      'tombstone',
    );
    return rows[0] === undefined ? undefined : tombstoneOf(rows[0]);
  }

  async tombstones(): Promise<Tombstone[]> {
    this.checkOpen();
    const rows = await this.rows<TombstoneColumns>(
      'SELECT canonical_id, name, version, deleted_at, record FROM tombstones ORDER BY name, version',
      [],
      'tombstones',
    );
    return rows.map(tombstoneOf);
  }

  async addTombstone(tombstone: Tombstone): Promise<boolean> {
    this.checkOpen();
    checkTombstone(tombstone);
    try {
      return await this.transaction(async (client) => {
        const invoice = await client.query('SELECT 1 FROM invoices WHERE name = $1 AND version = $2', [tombstone.name, tombstone.version]);
        if (invoice.rowCount !== 0) {
          throw new BindleError('already_exists', `invoice ${tombstone.name}/${tombstone.version} exists: it cannot have a tombstone`);
        }
        const written = await client.query(
          `INSERT INTO tombstones (canonical_id, name, version, deleted_at, record) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT DO NOTHING`,
          [tombstone.canonicalId, tombstone.name, tombstone.version, tombstone.deletedAt, tombstone.record],
        );
        return written.rowCount === 1;
      });
    } catch (err) {
      throw asBindleError(err, 'addTombstone');
    }
  }

  async query(q: InvoiceQuery): Promise<InvoiceQueryResult> {
    this.checkOpen();
    checkPaging(q);
    const { where, params, terms } = await this.whereOf(q);
    if (terms > 0) {
      const found = await this.fewMatchesPage(where, params, q);
      if (found !== undefined) return found;
    }
    // The page is found on narrow rows (the order index), then its documents are read; the
    // count runs beside it on another connection.
    const [rows, counted] = await Promise.all([
      this.rows<InvoiceColumns>(
        numberPlaceholders(
          `SELECT ${COLUMNS} FROM invoices i JOIN (
             SELECT i.id FROM invoices i ${where} ORDER BY ${INVOICE_ORDER} LIMIT ? OFFSET ?
           ) AS page USING (id) ORDER BY ${INVOICE_ORDER}`,
        ),
        [...params, q.limit, q.offset],
        'query',
      ),
      this.rows<{ total: string }>(numberPlaceholders(`SELECT count(*) AS total FROM invoices i ${where}`), params, 'query'),
    ]);
    return { total: Number(counted[0]?.total ?? 0), invoices: rows.map(storedInvoice) };
  }

  /**
   * One statement for the usual query with few matches: at most FEW_MATCHES + 1 of them are
   * found once (the trigram index's bitmap scan), then counted and sorted together, and the
   * page's documents read. Undefined when there are more (the caller counts and pages apart,
   * where the order index can serve the page), and when the page is past the last match.
   */
  private async fewMatchesPage(where: string, params: unknown[], q: InvoiceQuery): Promise<InvoiceQueryResult | undefined> {
    // The one-row left join carries `found` also when the page is empty.
    // Typed for the page's rows; the one row of an empty page has only `found`.
    const rows = await this.rows<InvoiceColumns & { found: string; total: string | null }>(
      numberPlaceholders(
        `WITH matches AS MATERIALIZED (SELECT i.id, i.name, i.version_key, i.version FROM invoices i ${where} LIMIT ?),
         page AS (
           SELECT id, count(*) OVER () AS total FROM matches i ORDER BY ${INVOICE_ORDER} LIMIT ? OFFSET ?
         )
         SELECT (SELECT count(*) FROM matches) AS found, page.total, ${COLUMNS}
         FROM (SELECT 1) AS one LEFT JOIN (page JOIN invoices i USING (id)) ON true
         ORDER BY ${INVOICE_ORDER}`,
      ),
      [...params, FEW_MATCHES + 1, q.limit, q.offset],
      'query',
    );
    const first = rows[0];
    if (first === undefined || Number(first.found) > FEW_MATCHES) return undefined;
    if (first.total === null) return q.offset === 0 ? { total: 0, invoices: [] } : undefined;
    return { total: Number(first.total), invoices: rows.map(storedInvoice) };
  }

  async invoicesWithParcel(sha256: string): Promise<Array<{ name: string; version: string; yanked: boolean }>> {
    this.checkOpen();
    return this.rows<{ name: string; version: string; yanked: boolean }>(
      `SELECT i.name, i.version, i.yanked FROM invoice_parcels p JOIN invoices i ON i.id = p.invoice_id
       WHERE p.sha256 = $1 ORDER BY ${INVOICE_ORDER}`,
      [sha256],
      'invoicesWithParcel',
    );
  }

  async ociManifest(name: string, version: string): Promise<OciManifestRecord | undefined> {
    this.checkOpen();
    const rows = await this.rows<OciManifestColumns>(
      `${OCI_MANIFEST_SELECT} WHERE i.name = $1 AND i.version = $2 AND m.position = 0`,
      [name, version],
      'ociManifest',
    );
    return rows[0] === undefined ? undefined : ociManifestRecord(rows[0]);
  }

  async ociManifestByDigest(name: string, digest: string): Promise<OciManifestRecord | undefined> {
    this.checkOpen();
    const rows = await this.rows<OciManifestColumns>(`${OCI_MANIFEST_SELECT} WHERE m.digest = $1 AND i.name = $2 LIMIT 1`, [digest, name], 'ociManifestByDigest');
    return rows[0] === undefined ? undefined : ociManifestRecord(rows[0]);
  }

  async ociConfig(name: string, digest: string): Promise<Buffer | undefined> {
    this.checkOpen();
    const rows = await this.rows<{ config: Buffer }>(
      'SELECT c.config FROM oci_configs c JOIN invoices i ON i.id = c.invoice_id WHERE c.digest = $1 AND i.name = $2 LIMIT 1',
      [digest, name],
      'ociConfig',
    );
    return rows[0]?.config;
  }

  async ociTags(name: string, last: string | undefined, n: number): Promise<OciTagPage | undefined> {
    this.checkOpen();
    const [exists, rows] = await Promise.all([
      this.rows('SELECT 1 FROM invoices WHERE name = $1 LIMIT 1', [name], 'ociTags'),
      this.rows<{ tag: string }>(
        `SELECT c.tag FROM invoices i JOIN oci_configs c ON c.invoice_id = i.id
         WHERE i.name = $1 AND NOT i.yanked AND c.tag IS NOT NULL AND c.tag > $2 ORDER BY c.tag LIMIT $3`,
        [name, last ?? '', n + 1],
        'ociTags',
      ),
    ]);
    if (exists.length === 0) return undefined;
    return { tags: rows.slice(0, n).map((r) => r.tag), more: rows.length > n };
  }

  async ociReferrers(name: string, subject: string): Promise<OciManifestRecord[]> {
    this.checkOpen();
    const rows = await this.rows<OciManifestColumns>(
      `${OCI_MANIFEST_SELECT} JOIN oci_manifests s ON s.invoice_id = m.invoice_id AND s.position = 0
       WHERE s.digest = $1 AND i.name = $2 AND m.position > 0 ORDER BY m.position`,
      [subject, name],
      'ociReferrers',
    );
    return rows.map(ociManifestRecord);
  }

  async createOciUpload(session: OciUploadSession, expireBefore: number): Promise<void> {
    this.checkOpen();
    try {
      await this.transaction(async (client) => {
        await client.query('DELETE FROM oci_uploads WHERE updated_at < $1', [expireBefore]);
        await client.query("INSERT INTO oci_uploads (uuid, name, chunks, size, created_at, updated_at) VALUES ($1, $2, '[]', 0, $3, $4)", [
          session.uuid, session.name, session.createdAt, session.updatedAt,
        ]);
      });
    } catch (err) {
      if (pgCode(err) === '23505') throw new BindleError('already_exists', `upload session ${session.uuid} already exists`);
      throw asBindleError(err, 'createOciUpload');
    }
  }

  async ociUpload(uuid: string): Promise<OciUploadSession | undefined> {
    this.checkOpen();
    const rows = await this.rows<Parameters<typeof uploadSessionOf>[0]>(
      'SELECT uuid, name, chunks, size, created_at, updated_at FROM oci_uploads WHERE uuid = $1',
      [uuid],
      'ociUpload',
    );
    return rows[0] === undefined ? undefined : uploadSessionOf(rows[0]);
  }

  async appendOciUpload(uuid: string, offset: number, chunk: OciUploadChunk, updatedAt: number): Promise<boolean> {
    this.checkOpen();
    checkUploadChunk(chunk);
    const rows = await this.rows(
      'UPDATE oci_uploads SET chunks = chunks || $1::jsonb, size = size + $2, updated_at = $3 WHERE uuid = $4 AND size = $5 RETURNING 1',
      [JSON.stringify([{ sha256: chunk.sha256, size: chunk.size }]), chunk.size, updatedAt, uuid, offset],
      'appendOciUpload',
    );
    return rows.length === 1;
  }

  async deleteOciUpload(uuid: string): Promise<boolean> {
    this.checkOpen();
    return (await this.rows('DELETE FROM oci_uploads WHERE uuid = $1 RETURNING 1', [uuid], 'deleteOciUpload')).length === 1;
  }

  async linkOciBlob(link: OciBlobLink): Promise<void> {
    this.checkOpen();
    checkBlobLink(link);
    await this.rows(
      `INSERT INTO oci_blob_links (name, sha256, linked_at) VALUES ($1, $2, $3)
       ON CONFLICT (name, sha256) DO UPDATE SET linked_at = greatest(oci_blob_links.linked_at, excluded.linked_at)`,
      [link.name, link.sha256, link.linkedAt],
      'linkOciBlob',
    );
  }

  async ociBlobLinked(name: string, sha256: string): Promise<boolean> {
    this.checkOpen();
    return (await this.rows('SELECT 1 FROM oci_blob_links WHERE name = $1 AND sha256 = $2', [name, sha256], 'ociBlobLinked')).length === 1;
  }

  async ociBlobLinks(sha256: string): Promise<OciBlobLink[]> {
    this.checkOpen();
    const rows = await this.rows<BlobLinkRow>('SELECT name, sha256, linked_at FROM oci_blob_links WHERE sha256 = $1 ORDER BY name', [sha256], 'ociBlobLinks');
    return rows.map(blobLinkOf);
  }

  async ociBlobLinkPage(after: { name: string; sha256: string } | undefined, n: number): Promise<OciBlobLink[]> {
    this.checkOpen();
    checkPageSize(n);
    const rows = await this.rows<BlobLinkRow>(
      after === undefined
        ? 'SELECT name, sha256, linked_at FROM oci_blob_links ORDER BY sha256, name LIMIT $1'
        : 'SELECT name, sha256, linked_at FROM oci_blob_links WHERE (sha256, name) > ($2, $3) ORDER BY sha256, name LIMIT $1',
      after === undefined ? [n] : [n, after.sha256, after.name],
      'ociBlobLinkPage',
    );
    return rows.map(blobLinkOf);
  }

  async unlinkOciBlob(sha256: string, linkedBefore: number): Promise<number> {
    this.checkOpen();
    return (await this.rows('DELETE FROM oci_blob_links WHERE sha256 = $1 AND linked_at <= $2 RETURNING 1', [sha256, linkedBefore], 'unlinkOciBlob')).length;
  }

  async ociRepositories(last: string | undefined, n: number): Promise<OciRepositoryPage> {
    this.checkOpen();
    checkPageSize(n);
    // Walks invoices_order (name first) and stops after n + 1 distinct names.
    const rows = await this.rows<{ name: string }>(
      'SELECT DISTINCT name FROM invoices WHERE name > $1 ORDER BY name LIMIT $2',
      [last ?? '', n + 1],
      'ociRepositories',
    );
    return { names: rows.slice(0, n).map((r) => r.name), more: rows.length > n };
  }

  async count(): Promise<number> {
    this.checkOpen();
    const rows = await this.rows<{ n: string }>('SELECT count(*) AS n FROM invoices', [], 'count');
    return Number(rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listening = false;
    if (this.relistenTimer !== undefined) clearTimeout(this.relistenTimer);
    clearInterval(this.heartbeatTimer);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.pool.end();
  }

  private checkOpen(): void {
    if (this.closed) throw new BindleError('unavailable', `the PostgreSQL invoice index (schema ${this.schema}) is closed`);
  }

  private async rows<R extends object>(sql: string, params: unknown[], what: string): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw asBindleError(err, what);
    }
  }

  /** Runs `body` in one transaction on one pooled connection; rolls back on any error. */
  private async transaction<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      return await inTransaction(client, body, () => {
        broken = true;
      });
    } finally {
      client.release(broken);
    }
  }

  /**
   * Creates the schema and applies pending migrations, one opener at a time per database, on a
   * connection of its own without the pool's statement timeout.
   */
  private async migrate(connectTimeoutMs: number): Promise<void> {
    const client = new this.pg.Client({ ...this.clientConfig, connectionTimeoutMillis: connectTimeoutMs });
    await client.connect();
    try {
      await this.migrateOn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
    const { rows } = await this.pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
    if (rows[0]?.schema !== this.schema) {
      throw new BindleError('invalid_config', `the PostgreSQL URL's options set a search_path without schema ${this.schema} first`);
    }
  }

  /** The migration transaction on `connection` (ended by the caller, so a failed ROLLBACK needs nothing more). */
  private async migrateOn(connection: Client): Promise<void> {
    await inTransaction(connection, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public');
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schema)}`);
      await client.query(`SET LOCAL search_path TO ${quoteIdent(this.schema)}, public`);
      await client.query('CREATE TABLE IF NOT EXISTS bindle_schema_version (version integer NOT NULL)');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM bindle_schema_version');
      const current = rows[0]?.version ?? 0;
      if (current > MIGRATIONS.length) {
        throw new BindleError(
          'unavailable',
          `invoice index schema ${this.schema} has version ${current}, but this server only knows versions up to ${MIGRATIONS.length}: upgrade the server`,
        );
      }
      for (const step of MIGRATIONS.slice(current)) await client.query(step);
      if (current < OCI_TABLES_VERSION) await backfillOci(client);
      if (rows.length === 0) await client.query('INSERT INTO bindle_schema_version (version) VALUES ($1)', [MIGRATIONS.length]);
      else await client.query('UPDATE bindle_schema_version SET version = $1', [MIGRATIONS.length]);
    }, () => undefined);
  }

  /**
   * Subscribes a dedicated connection to the channel and checks it every fifth of the listener
   * timeout. While it is down the cache is off (every get reads the database) and it reconnects
   * after RELISTEN_MS; a connection or check that takes the listener timeout counts as down.
   */
  private async listen(): Promise<void> {
    const client = new this.pg.Client({
      ...this.clientConfig,
      application_name: `bindle-server listener ${this.schema}`,
      connectionTimeoutMillis: this.listenerTimeoutMs,
      // pg fails a query unanswered this long; end() then destroys the connection.
      query_timeout: this.listenerTimeoutMs,
    });
    const lost = (): void => {
      if (this.listener !== client) return;
      this.listener = undefined;
      this.listening = false;
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = undefined;
      this.invalidate();
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.relistenTimer = setTimeout(() => {
        this.relistenTimer = undefined;
        if (!this.closed) this.listen().catch(() => undefined);
      }, RELISTEN_MS);
      this.relistenTimer.unref();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message: Notification) => {
      if (message.channel === CHANNEL && message.payload === this.schema) this.invalidate();
    });
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      lost();
      throw err;
    }
    if (this.closed || this.listener !== client) {
      await client.end().catch(() => undefined);
      return;
    }
    this.invalidate();
    this.listening = true;
    // The cache was just emptied, and every later notification comes on this live connection.
    this.confirmedAt = performance.now();
    let checking = false;
    const check = async (): Promise<void> => {
      if (checking || this.listener !== client) return;
      checking = true;
      const started = performance.now();
      try {
        await client.query('SELECT 1');
        if (this.listener === client) this.confirmedAt = started;
      } catch {
        lost();
      } finally {
        checking = false;
      }
    };
    this.heartbeatTimer = setInterval(() => void check(), Math.floor(this.listenerTimeoutMs / 5));
    this.heartbeatTimer.unref();
  }

  private invalidate(): void {
    this.generation += 1;
    this.recent.clear();
  }

  /** The WHERE clause of a query (with `?` placeholders), its parameters, and the number of its terms. */
  private async whereOf(q: InvoiceQuery): Promise<{ where: string; params: unknown[]; terms: number }> {
    const clauses: string[] = [];
    const params: unknown[] = [];
    if (!q.yanked) clauses.push('NOT i.yanked');
    const { column, terms } = queryMatch(q);
    for (const term of terms) {
      clauses.push(`i.${column} LIKE ?`);
      params.push(containsPattern(term));
    }
    const version = versionFilter(q.version);
    if (version?.kind === 'exact') {
      clauses.push('i.version_key = ?', 'i.version = ?');
      params.push(version.key, version.version);
    } else if (version?.kind === 'range') {
      if (version.lower !== undefined) {
        clauses.push('i.version_key >= ?');
        params.push(version.lower);
      }
      if (version.upper !== undefined) {
        clauses.push('i.version_key <= ?');
        params.push(version.upper);
      }
      // Versions the semver package cannot read exactly are few: those that satisfy the range
      // are found here, by the package itself, and named in the query.
      const unsafe = await this.rows<{ version: string }>('SELECT DISTINCT version FROM invoices WHERE NOT semver_safe', [], 'query');
      const admitted = unsafe.map((r) => r.version).filter((v) => satisfies(v, version.range));
      clauses.push(`((i.semver_safe AND ${version.exact.sql}) OR (NOT i.semver_safe AND i.version = ANY(?::text[])))`);
      params.push(...version.exact.params, admitted);
    }
    return { where: clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`, params, terms: terms.length };
  }
}
