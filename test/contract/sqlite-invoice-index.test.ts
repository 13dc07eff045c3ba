import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import semver from 'semver';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  FTS_USERMERGE, MIGRATIONS, RECENT_RECHECK_MS, ROWS_PER_INSERT, SqliteInvoiceIndex, type SqliteInvoiceIndexOptions,
} from '../../server/storage/sqlite-invoice-index.js';
import { isTombstone, type InvoiceQuery } from '../../server/storage/invoice-index.js';
import { capPageCache, PAGE_CACHE_BYTES, QUERY_WORKER_PAGE_CACHE_BYTES, StatementCache } from '../../server/storage/sqlite-connection.js';
import { registerQueryFunctions, SqliteQueryPager } from '../../server/storage/sqlite-query-pager.js';
import { buildBindleManifest } from '../../core/oci/index.js';
import { insertManyContract, invoiceIndexContract, makeEntry, makeTombstone } from './invoice-index-contract.js';

invoiceIndexContract(t, 'SqliteInvoiceIndex (FTS5)', (dir) => Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'))));
invoiceIndexContract(t, 'SqliteInvoiceIndex (FTS5, every query on a query worker)', (dir) =>
  Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'), { queryWorkers: true, inlineQueryRows: 0 })),
);
invoiceIndexContract(t, 'SqliteInvoiceIndex (FTS5, query workers as in a server)', (dir) =>
  Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'), { queryWorkers: true })),
);
invoiceIndexContract(t, 'SqliteInvoiceIndex (scan fallback)', (dir) =>
  Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'), { fullTextSearch: false })),
);
insertManyContract(t, 'SqliteInvoiceIndex', (dir) => Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'))));

/** The query order of stored invoices: name, then SemVer descending (for expected answers). */
function inQueryOrder(a: { name: string; version: string }, b: { name: string; version: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : semver.rcompare(a.version, b.version);
}

/** Runs `fn` against the raw file with a separate connection. */
function withRaw<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

t.test('open creates the parent directory and a WAL file at the current schema version', async (t) => {
  const path = join(t.testdir(), 'deep', 'er', 'index.db');
  const index = SqliteInvoiceIndex.open(path);
  t.equal(index.fullTextSearch, true, 'the bundled SQLite has FTS5 trigram');
  await index.close();
  t.ok(existsSync(path));
  t.equal(withRaw(path, (db) => db.pragma('journal_mode', { simple: true })), 'wal');
  t.equal(withRaw(path, (db) => db.pragma('user_version', { simple: true })), MIGRATIONS.length);
});

t.test('the page cache of a connection is capped at 16 MiB, so a growing index does not grow the resting RSS by more (issue 13 soak)', async (t) => {
  const index = SqliteInvoiceIndex.open(join(t.testdir(), 'index.db'));
  t.teardown(() => index.close());
  const bytes = index.pageCacheBytes();
  t.ok(bytes <= 16 * 2 ** 20, `page cache ${bytes} bytes`);
  t.ok(bytes >= 4 * 2 ** 20, 'still room for the hot pages of the indexes');
});

t.test('capPageCache caps a connection at 16 MiB by default; a query worker\'s at less', async (t) => {
  const db = new Database(join(t.testdir(), 'raw.db'));
  t.teardown(() => db.close());
  capPageCache(db);
  t.equal(db.pragma('cache_size', { simple: true }), -PAGE_CACHE_BYTES / 1024, 'cache_size in KiB, negative');
  capPageCache(db, QUERY_WORKER_PAGE_CACHE_BYTES);
  t.equal(db.pragma('cache_size', { simple: true }), -QUERY_WORKER_PAGE_CACHE_BYTES / 1024);
  t.ok(QUERY_WORKER_PAGE_CACHE_BYTES < PAGE_CACHE_BYTES, 'the worker\'s scans are served from the OS page cache either way');
});

/** Two connections to one new index file, closed at the end of the test; the reader opened with `readerOptions`. */
function twoConnections(t: Test, readerOptions: SqliteInvoiceIndexOptions = {}): { reader: SqliteInvoiceIndex; writer: SqliteInvoiceIndex } {
  const path = join(t.testdir(), 'index.db');
  const reader = SqliteInvoiceIndex.open(path, readerOptions);
  const writer = SqliteInvoiceIndex.open(path);
  t.teardown(async () => {
    await reader.close();
    await writer.close();
  });
  return { reader, writer };
}

t.test('a reader sees what another connection commits (once RECENT_RECHECK_MS passed), though it read the invoice before', async (t) => {
  const { reader, writer } = twoConnections(t);
  await writer.insert(makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'before' }));
  for (let i = 0; i < 3; i++) t.equal((await reader.get('enterprise.com/warpcore', '1.0.0'))?.invoice.bindle.description, 'before');
  t.equal(await writer.yank(makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'after', yanked: true })), true);
  await sleep(RECENT_RECHECK_MS + 5);
  const got = await reader.get('enterprise.com/warpcore', '1.0.0');
  t.equal(got?.yanked, true, 'the yank is seen');
  t.equal(got?.invoice.bindle.description, 'after');
  t.match(got?.toml, /after/);
  t.equal(await reader.get('enterprise.com/warpcore', '2.0.0'), undefined, 'a miss stays a miss');
  await writer.insert(makeEntry('enterprise.com/warpcore', '2.0.0'));
  await sleep(RECENT_RECHECK_MS + 5);
  t.equal((await reader.get('enterprise.com/warpcore', '2.0.0'))?.version, '2.0.0', 'and is found once inserted elsewhere');
});

t.test('cachedInvoice gives up what another connection changed, once RECENT_RECHECK_MS passed', async (t) => {
  const { reader, writer } = twoConnections(t);
  await writer.insert(makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'before' }));
  t.equal(reader.cachedInvoice('enterprise.com/warpcore', '1.0.0'), undefined, 'not cached before it is read');
  await reader.lookup('enterprise.com/warpcore', '1.0.0');
  t.equal(reader.cachedInvoice('enterprise.com/warpcore', '1.0.0')?.invoice.bindle.description, 'before', 'cached once read');
  t.equal(await writer.yank(makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'after', yanked: true })), true);
  await sleep(RECENT_RECHECK_MS + 5);
  t.equal(reader.cachedInvoice('enterprise.com/warpcore', '1.0.0'), undefined, 'the other connection\'s yank empties the cache');
  const read = await reader.lookup('enterprise.com/warpcore', '1.0.0');
  t.ok(read !== undefined && !isTombstone(read) && read.yanked, 'lookup reads the yank');
  t.equal(reader.cachedInvoice('enterprise.com/warpcore', '1.0.0')?.yanked, true, 'and the cache then holds it');
  await reader.close();
  t.equal(reader.cachedInvoice('enterprise.com/warpcore', '1.0.0'), undefined, 'nothing once closed');
});

for (const queryWorkers of [false, true]) {
  t.test(`a repeated query sees every write since its last answer: this connection's and another connection's (queryWorkers ${queryWorkers})`, async (t) => {
    const { reader, writer } = twoConnections(t, { queryWorkers, inlineQueryRows: 0 });
    const ask = async (): Promise<string[]> =>
      (await reader.query({ query: 'warpcore', strict: true, offset: 0, limit: 10, yanked: false })).invoices.map((i) => i.version);
    await reader.insert(makeEntry('enterprise.com/warpcore', '1.0.0'));
    t.same(await ask(), ['1.0.0']);
    t.same(await ask(), ['1.0.0'], 'asked again');
    await writer.insert(makeEntry('enterprise.com/warpcore', '2.0.0'));
    t.same(await ask(), ['2.0.0', '1.0.0'], 'another connection\'s insert');
    await writer.yank(makeEntry('enterprise.com/warpcore', '2.0.0', { yanked: true }));
    t.same(await ask(), ['1.0.0'], 'another connection\'s yank');
    await reader.insert(makeEntry('enterprise.com/warpcore', '3.0.0'));
    t.same(await ask(), ['3.0.0', '1.0.0'], 'its own insert');
    await reader.yank(makeEntry('enterprise.com/warpcore', '3.0.0', { yanked: true }));
    t.same(await ask(), ['1.0.0'], 'its own yank');
    await reader.delete(makeTombstone('enterprise.com/warpcore', '1.0.0'));
    t.same(await ask(), [], 'its own delete');
    await writer.insert(makeEntry('enterprise.com/warpcore', '4.0.0'));
    await writer.delete(makeTombstone('enterprise.com/warpcore', '4.0.0'));
    t.same(await ask(), [], 'another connection\'s insert and delete');
  });
}

/** Records the SQL of every statement this thread's better-sqlite3 connections prepare while `body` runs. */
async function preparedDuring<T>(body: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
  const proto = Database.prototype as { prepare: (sql: string) => Database.Statement };
  const original = proto.prepare;
  const sql: string[] = [];
  proto.prepare = function (this: Database.Database, text: string): Database.Statement {
    sql.push(text);
    return original.call(this, text);
  };
  try {
    return { result: await body(), sql };
  } finally {
    proto.prepare = original;
  }
}

/** An index file of 300 invoices (60 names, 5 versions each, some yanked), and two connections: one without query workers, one with `options`. */
async function inlineAndWorkers(t: Test, options: SqliteInvoiceIndexOptions): Promise<{ inline: SqliteInvoiceIndex; workers: SqliteInvoiceIndex }> {
  const path = join(t.testdir(), 'index.db');
  const inline = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  const workers = SqliteInvoiceIndex.open(path, { ...options, queryWorkers: true, backgroundMerge: false });
  t.teardown(async () => {
    await workers.close();
    await inline.close();
  });
  await inline.insertMany(
    Array.from({ length: 300 }, (_, i) =>
      makeEntry(`example.com/app-${i % 60}`, `1.${Math.floor(i / 60)}.0`, { description: i % 3 === 0 ? 'a tool' : 'the module', yanked: i % 7 === 0 }),
    ),
  );
  return { inline, workers };
}

/**
 * The statements of a query's matching: all but the documents' read by id and the bounded count
 * of candidates that decides where to match (SqliteQueryPager.pageWithin), always on the calling thread.
 */
const matching = (sql: string[]): string[] => sql.filter((text) => !text.includes('json_each') && !/MATCH \? LIMIT \?/.test(text));

t.test('with queryWorkers and no inline rows every query is matched on a worker thread: this thread only reads the page\'s documents; the answers are the same', async (t) => {
  const { inline, workers } = await inlineAndWorkers(t, { inlineQueryRows: 0 });
  const queries: InvoiceQuery[] = [
    { query: 'a', strict: false, offset: 0, limit: 20, yanked: false },
    { query: 'app-1', strict: true, offset: 5, limit: 10, yanked: true },
    { query: 'module', strict: false, offset: 100, limit: 50, yanked: false, version: '>=1.1.0 <1.4.0' },
    { query: '', strict: false, offset: 250, limit: 100, yanked: true },
    { query: 'zz q', strict: false, offset: 0, limit: 10, yanked: false },
  ];
  for (const q of queries) {
    const offThread = await preparedDuring(() => workers.query(q));
    const onThread = await preparedDuring(() => inline.query(q));
    t.same(offThread.result.total, onThread.result.total, `${JSON.stringify(q)}: the same total`);
    t.same(offThread.result.invoices.map((i) => i.canonicalId), onThread.result.invoices.map((i) => i.canonicalId), 'the same page');
    t.same(matching(offThread.sql), [], 'with query workers this thread prepared no statement but the documents\' read');
    t.not(matching(onThread.sql).length, 0, 'without, it prepares the matching statements (what the line above would see)');
  }
  t.ok((await inline.query(queries[0] as InvoiceQuery)).total > 0, 'the short term matches something');
  await t.rejects(workers.query({ query: '', version: 'not a range', strict: false, offset: 0, limit: 10, yanked: false }), { code: 'invalid_query' }, 'a worker\'s error keeps its code');
});

t.test('with queryWorkers a query that visits at most inlineQueryRows invoices runs on this thread, any other on a worker; the answers are the same', async (t) => {
  const { inline, workers } = await inlineAndWorkers(t, { inlineQueryRows: 20 });
  const cases: Array<{ q: InvoiceQuery; here: boolean; why: string }> = [
    { q: { query: 'app-59', strict: true, offset: 0, limit: 10, yanked: true }, here: true, why: 'one name of 5 invoices' },
    { q: { query: 'app-58 tool', strict: false, offset: 0, limit: 10, yanked: false, version: '>=1.1.0' }, here: true, why: 'its longest term: one name, and no other text' },
    { q: { query: 'app-57', strict: true, offset: 15, limit: 10, yanked: true }, here: false, why: 'the page ends past 20' },
    { q: { query: 'app-1', strict: true, offset: 0, limit: 10, yanked: true }, here: false, why: '11 names (app-1, app-10 to app-19) of 55 invoices' },
    { q: { query: 'module', strict: false, offset: 0, limit: 10, yanked: false }, here: false, why: 'in the text of 200 invoices' },
    { q: { query: 'a', strict: false, offset: 0, limit: 10, yanked: false }, here: false, why: 'a one-letter term: a scan' },
    { q: { query: '', strict: false, offset: 0, limit: 10, yanked: false, version: '1.2.0' }, here: false, why: 'no term: rows of the whole index' },
  ];
  for (const { q, here, why } of cases) {
    const routed = await preparedDuring(() => workers.query(q));
    const expected = await inline.query(q);
    t.same(routed.result.invoices.map((i) => i.canonicalId), expected.invoices.map((i) => i.canonicalId), `${why}: the same page`);
    t.equal(routed.result.total, expected.total, 'the same total');
    t.equal(matching(routed.sql).length > 0, here, here ? `${why}: matched on this thread` : `${why}: matched on a worker`);
  }
});

t.test('closing an index with queryWorkers rejects a query still waiting for its worker as unavailable; later queries are refused', async (t) => {
  const index = SqliteInvoiceIndex.open(join(t.testdir(), 'index.db'), { queryWorkers: true, inlineQueryRows: 0 });
  await index.insert(makeEntry('example.com/app', '1.0.0'));
  const pending = index.query({ query: 'app', strict: false, offset: 0, limit: 10, yanked: false });
  await index.close();
  await t.rejects(pending, { code: 'unavailable' });
  await t.rejects(index.query({ query: 'app', strict: false, offset: 0, limit: 10, yanked: false }), { code: 'unavailable' });
});

t.test('a term query whose matches sorting would page is counted and paged in one pass over them, also past its end; one with more walks the order index after a count; a few candidates on the calling thread are sorted whole', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const writer = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => writer.close());
  const entries = Array.from({ length: 300 }, (_, i) => makeEntry(`example.com/app-${i % 60}`, `1.${Math.floor(i / 60)}.0`, { yanked: i % 7 === 0 }));
  await writer.insertMany(entries);
  // Expected answers from the entries themselves: name order, then SemVer descending.
  const expected = (term: string, yanked = false): string[] =>
    entries
      .filter((e) => (yanked || !e.yanked) && e.name.includes(term))
      .sort(inQueryOrder)
      .map((e) => e.canonicalId);
  // Each query on a connection of its own, so that every statement it runs is prepared during it.
  const run = async (q: InvoiceQuery, options: SqliteInvoiceIndexOptions = {}): Promise<{ ids: string[]; total: number; sql: string[] }> => {
    const index = SqliteInvoiceIndex.open(path, { ...options, backgroundMerge: false });
    try {
      const { result, sql } = await preparedDuring(() => index.query(q));
      return { ids: result.invoices.map((i) => i.canonicalId), total: result.total, sql };
    } finally {
      await index.close();
    }
  };
  const onePass = (sql: string[]): boolean => sql.some((text) => text.includes('MATERIALIZED'));
  const counted = (sql: string[]): boolean => sql.some((text) => text.startsWith('SELECT count(*) FROM (SELECT i.id'));
  const walked = (sql: string[]): boolean => sql.some((text) => /FROM invoices INDEXED BY invoices_order ORDER BY/.test(text));
  // Counting every invoice reads a whole index: a term query's total comes from its matches.
  const countedAll = (sql: string[]): boolean => sql.includes('SELECT count(*) FROM invoices');

  const few = await run({ query: 'app-59', strict: true, offset: 1, limit: 10, yanked: false });
  t.same(few.ids, expected('app-59').slice(1, 11), 'a name of 5 invoices: the page');
  t.equal(few.total, expected('app-59').length, 'and its total');
  t.ok(onePass(few.sql) && !counted(few.sql) && !walked(few.sql), 'from one statement over the matches, no count of its own');

  // 'app' is in all 60 names: 257 unyanked invoices, more than sorting pays for on the page of
  // one at offset 3 of 300 invoices (√(4 · 4 · 300) ≈ 69), but not more names.
  const many = await run({ query: 'app', strict: true, offset: 3, limit: 1, yanked: false });
  t.same(many.ids, expected('app').slice(3, 4), 'every name, a page of one: the page');
  t.equal(many.total, expected('app').length, 'and its total');
  t.ok(onePass(many.sql) && counted(many.sql) && walked(many.sql), 'one pass tried, then counted and found by walking the order index');
  // At offset 0 (√(4 · 1 · 300) ≈ 34) the names alone are more: the one pass is not tried.
  const skipped = await run({ query: 'app', strict: true, offset: 0, limit: 1, yanked: false });
  t.same(skipped.ids, expected('app').slice(0, 1), 'the first page of one');
  t.equal(skipped.total, expected('app').length, 'and its total');
  t.ok(!onePass(skipped.sql) && counted(skipped.sql), 'counted, without a one-pass attempt');
  t.ok(!countedAll(few.sql) && !countedAll(many.sql) && !countedAll(skipped.sql), 'none counted every invoice to choose how');
  const everything = await run({ query: '', strict: false, offset: 0, limit: 10, yanked: false });
  t.equal(everything.total, entries.filter((e) => !e.yanked).length, 'a query without terms: every unyanked invoice');
  t.ok(countedAll(everything.sql), 'whose total needs the count of all invoices');

  const past = await run({ query: 'app-59', strict: true, offset: 10, limit: 10, yanked: false });
  t.same(past.ids, [], 'a page past the matches is empty');
  t.equal(past.total, expected('app-59').length, 'and still has the total');
  t.ok(onePass(past.sql) && !counted(past.sql), 'from the same one pass');

  const none = await run({ query: 'nothing-like-it', strict: false, offset: 0, limit: 10, yanked: false });
  t.same([none.total, none.ids], [0, []], 'no match: total 0');
  t.ok(onePass(none.sql) && !counted(none.sql), 'known from the one pass');

  // On the calling thread of a server's index (query workers), a query of a few candidates sorts all its matches' ids.
  const sortedAll = (sql: string[]): boolean => sql.some((text) => /ORDER BY name, version_key DESC, version$/.test(text));
  for (const q of [
    { query: 'app-59', strict: true, offset: 1, limit: 2, yanked: false },
    { query: 'app-59', strict: true, offset: 10, limit: 10, yanked: false },
    { query: 'APP-5', strict: false, offset: 0, limit: 3, yanked: true },
  ]) {
    const here = await run(q, { queryWorkers: true });
    const all = expected(q.query.toLowerCase(), q.yanked);
    t.same(here.ids, all.slice(q.offset, q.offset + q.limit), `${JSON.stringify(q)}: the page`);
    t.equal(here.total, all.length, 'its total');
    t.ok(sortedAll(here.sql) && !onePass(here.sql) && !counted(here.sql), 'from the ids of all its matches in order, no count, no one-pass statement');
  }
});

/** A connection's statements that let `between` run each time the pager asks for its next statement (after the first). */
class InterleavedStatements extends StatementCache {
  #asked = 0;
  readonly #between: () => void;

  constructor(db: Database.Database, between: () => void) {
    super(db);
    this.#between = between;
  }

  override rows(sql: string): Database.Statement {
    this.#interleave();
    return super.rows(sql);
  }

  override values(sql: string): Database.Statement {
    this.#interleave();
    return super.values(sql);
  }

  #interleave(): void {
    if (this.#asked++ > 0) this.#between();
  }
}

t.test('a query\'s total and page come from one snapshot: another connection yanking invoices between its statements changes neither', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const writer = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => writer.close());
  await writer.insertMany(Array.from({ length: 40 }, (_, i) => makeEntry(`example.com/app-${i % 8}`, `1.${Math.floor(i / 8)}.0`)));
  const other = new Database(path);
  const reader = new Database(path);
  t.teardown(() => {
    reader.close();
    other.close();
  });
  registerQueryFunctions(reader);
  const yankOne = other.prepare('UPDATE invoices SET yanked = 1 WHERE id = (SELECT min(id) FROM invoices WHERE yanked = 0)');
  let yanks = 0;
  // A pager per query: the first statement of each runs before any yank.
  const pager = (): SqliteQueryPager =>
    new SqliteQueryPager(
      new InterleavedStatements(reader, () => {
        yankOne.run();
        yanks++;
      }),
      true,
    );
  const unyanked = (): number => other.prepare('SELECT count(*) FROM invoices WHERE yanked = 0').pluck().get() as number;
  const cases: Array<{ q: InvoiceQuery; within?: number; why: string }> = [
    { q: { query: '', strict: false, offset: 0, limit: 100, yanked: false }, why: 'no term: counted, then walked or sorted' },
    { q: { query: '', strict: false, offset: 0, limit: 100, yanked: false, version: '>=1.1.0' }, why: 'a version filter: counted, then paged' },
    { q: { query: 'app', strict: true, offset: 0, limit: 100, yanked: false }, within: 100, why: 'a term on the calling thread: candidates counted, then sorted' },
  ];
  for (const { q, within, why } of cases) {
    const before = unyanked();
    const yanksBefore = yanks;
    const page = within === undefined ? pager().page(q) : pager().pageWithin(q, within);
    t.ok(yanks > yanksBefore, `${why}: another connection yanked ${yanks - yanksBefore} invoice(s) while it ran`);
    t.ok(page !== undefined, `${why}: answered`);
    t.equal(page?.ids.length, page?.total, `${why}: the page holds every match its total counts`);
    if (q.version === undefined) t.equal(page?.total, before, `${why}: as many as were unyanked when it started`);
  }
});

t.test('StatementCache.reading: one transaction around its body, nested as a savepoint; a throw propagates and leaves none open', async (t) => {
  const db = new Database(join(t.testdir(), 'raw.db'));
  t.teardown(() => db.close());
  const statements = new StatementCache(db);
  t.equal(statements.reading(() => db.inTransaction), true, 'the body runs in a transaction');
  t.equal(statements.reading(() => statements.reading(() => 7)), 7, 'a nested body returns its value');
  t.throws(() => statements.reading(() => {
    throw new Error('boom');
  }), { message: 'boom' });
  t.equal(db.inTransaction, false, 'no transaction left open');
});

t.test('on the calling thread, a term query with more candidates than are sorted whole but few enough for one pass is not looked up again to bound its holders', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const writer = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => writer.close());
  // 60 names of 12 versions: 720 candidates, more than the 512 sorted whole, fewer than the 2000 of the calling thread.
  const entries = Array.from({ length: 720 }, (_, i) => makeEntry(`example.com/app-${i % 60}`, `1.${Math.floor(i / 60)}.0`));
  await writer.insertMany(entries);
  const index = SqliteInvoiceIndex.open(path, { queryWorkers: true, backgroundMerge: false });
  t.teardown(() => index.close());
  // A page of 200 at offset 0 of 720 invoices: one pass sorts up to √(4 · 200 · 720) ≈ 758 matches, more than the candidates.
  const q: InvoiceQuery = { query: 'app', strict: true, offset: 0, limit: 200, yanked: true };
  const { result, sql } = await preparedDuring(() => index.query(q));
  const expected = [...entries].sort(inQueryOrder).map((e) => e.canonicalId);
  t.equal(result.total, 720);
  t.same(result.invoices.map((i) => i.canonicalId), expected.slice(0, 200), 'the page');
  t.ok(sql.some((text) => text.includes('MATERIALIZED')), 'from the one-pass statement');
  t.ok(sql.some((text) => text.includes('coalesce(sum(invoices), 0)')), 'after counting the candidates');
  t.notOk(sql.some((text) => text.startsWith('SELECT count(*) FROM (SELECT rowid FROM bindle_name_fts')), 'without counting the names holding the term again');
});

t.test('a cached invoice is handed out as the same object (parsed once) until a yank replaces it', async (t) => {
  const index = SqliteInvoiceIndex.open(join(t.testdir(), 'index.db'));
  t.teardown(() => index.close());
  await index.insert(makeEntry('enterprise.com/warpcore', '1.0.0'));
  const first = await index.get('enterprise.com/warpcore', '1.0.0');
  const again = await index.get('enterprise.com/warpcore', '1.0.0');
  t.ok(first !== undefined && first === again, 'a hit is the same object');
  t.equal(first?.invoice, again?.invoice, 'whose invoice was parsed once');
  t.equal(await index.yank(makeEntry('enterprise.com/warpcore', '1.0.0', { yanked: true })), true);
  const yanked = await index.get('enterprise.com/warpcore', '1.0.0');
  t.not(yanked, first, 'a yank drops the cached object');
  t.equal(yanked?.yanked, true);
  t.equal(yanked?.invoice.yanked, true);
  t.equal(first?.yanked, false, 'an object handed out before the yank is left as it was');
});

/** Turns a current index file back into one of schema version 6 (as that version's server left it): no parcel sizes. */
function toSchemaVersion6(db: Database.Database): void {
  db.exec('DROP INDEX invoice_parcels_sha256; ALTER TABLE invoice_parcels DROP COLUMN size; CREATE INDEX invoice_parcels_sha256 ON invoice_parcels (sha256)');
  db.pragma('user_version = 6');
}

t.test('a file of schema version 6 gets each listed parcel\'s label size from the stored invoices; sizes already disagreeing stay', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  await index.insert(makeEntry('old/m', '1.0.0', { parcels: ['a'.repeat(64), 'b'.repeat(64)], sizes: [7, 8] }));
  await index.insert(makeEntry('old/n', '1.0.0', { parcels: ['b'.repeat(64)], sizes: [8] }));
  await index.close();
  withRaw(path, toSchemaVersion6);
  const sizes = (): unknown[] => withRaw(path, (db) => db.prepare('SELECT i.name, p.sha256, p.size FROM invoice_parcels p JOIN invoices i ON i.id = p.invoice_id ORDER BY i.name, p.sha256').all());
  const migrated = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => migrated.close());
  t.equal(withRaw(path, (db) => db.pragma('user_version', { simple: true })), MIGRATIONS.length);
  t.same(sizes(), [
    { name: 'old/m', sha256: 'a'.repeat(64), size: 7 },
    { name: 'old/m', sha256: 'b'.repeat(64), size: 8 },
    { name: 'old/n', sha256: 'b'.repeat(64), size: 8 },
  ], 'filled from the invoice records');
  await t.rejects(migrated.insert(makeEntry('new/x', '1.0.0', { parcels: ['a'.repeat(64)], sizes: [6] })), { code: 'size_mismatch', message: /old\/m\/1\.0\.0 lists it with 7 bytes/ });
  await migrated.insert(makeEntry('new/x', '1.0.0', { parcels: ['a'.repeat(64)], sizes: [7] }));
  // Invoices of one parcel disagreeing, as a server before the rule could store them.
  withRaw(path, (db) => db.prepare(`UPDATE invoice_parcels SET size = 9 WHERE invoice_id = (SELECT id FROM invoices WHERE name = 'old/n')`).run());
  for (const size of [8, 9]) {
    await t.rejects(migrated.insert(makeEntry('new/y', '1.0.0', { parcels: ['b'.repeat(64)], sizes: [size] })), { code: 'size_mismatch' }, `${size} differs from one of them`);
  }
  t.equal((await migrated.invoicesWithParcel('b'.repeat(64))).length, 2, 'the disagreeing invoices stay');
});

/** Turns a current index file back into one of schema version 5 (as that version's server left it): no blob links. */
function toSchemaVersion5(db: Database.Database): void {
  toSchemaVersion6(db);
  db.exec('DROP TABLE oci_blob_links');
  db.pragma('user_version = 5');
}

t.test('a file of schema version 5 gets the OCI blob links table, empty; its invoices stay and serve', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  await index.insert(makeEntry('old/app', '1.0.0'));
  await index.close();
  withRaw(path, toSchemaVersion5);
  t.notOk(withRaw(path, (db) => db.prepare(`SELECT 1 FROM sqlite_schema WHERE name = 'oci_blob_links'`).get()), 'a version 5 file has no links table');
  const migrated = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => migrated.close());
  t.equal(withRaw(path, (db) => db.pragma('user_version', { simple: true })), MIGRATIONS.length);
  t.same(await migrated.ociBlobLinkPage(undefined, 10), [], 'no links yet');
  await migrated.linkOciBlob({ name: 'old/app', sha256: 'a'.repeat(64), linkedAt: 1 });
  t.equal(await migrated.ociBlobLinked('old/app', 'a'.repeat(64)), true, 'links are kept');
  t.same(await migrated.ociRepositories(undefined, 10), { names: ['old/app'], more: false }, 'the invoices stay');
});

/**
 * Turns a current index file back into one of schema version 4 (as that version's server left
 * it, FTS5 in use): no bindle_names, and the one full-text table over invoices(name, search_text).
 */
function toSchemaVersion4(db: Database.Database): void {
  toSchemaVersion5(db);
  db.exec(`
    DROP TABLE bindle_name_fts; DROP TABLE invoice_text_fts;
    DROP TRIGGER invoice_text_fts_insert; DROP TRIGGER invoice_text_fts_delete; DROP TRIGGER invoice_text_fts_update;
    DROP TRIGGER bindle_names_insert; DROP TRIGGER bindle_names_delete; DROP TRIGGER bindle_names_update;
    DROP TABLE bindle_names;
    CREATE VIRTUAL TABLE invoice_fts USING fts5(
      name, search_text, content = 'invoices', content_rowid = 'id', tokenize = 'trigram case_sensitive 1'
    );
    CREATE TRIGGER invoice_fts_insert AFTER INSERT ON invoices BEGIN
      INSERT INTO invoice_fts (rowid, name, search_text) VALUES (new.id, new.name, new.search_text);
    END;
    CREATE TRIGGER invoice_fts_delete AFTER DELETE ON invoices BEGIN
      INSERT INTO invoice_fts (invoice_fts, rowid, name, search_text) VALUES ('delete', old.id, old.name, old.search_text);
    END;
    CREATE TRIGGER invoice_fts_update AFTER UPDATE ON invoices
    WHEN old.name IS NOT new.name OR old.search_text IS NOT new.search_text BEGIN
      INSERT INTO invoice_fts (invoice_fts, rowid, name, search_text) VALUES ('delete', old.id, old.name, old.search_text);
      INSERT INTO invoice_fts (rowid, name, search_text) VALUES (new.id, new.name, new.search_text);
    END;
    INSERT INTO invoice_fts (invoice_fts) VALUES ('rebuild');
  `);
  db.pragma('user_version = 4');
}

t.test('a file of schema version 4 gets bindle_names and the two full-text tables in place of the old one; queries find the same', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  await index.insertMany([
    makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'The warp core' }),
    makeEntry('enterprise.com/warpcore', '1.1.0', { description: 'The warp core' }),
    makeEntry('Enterprise.com/Transporter', '2.0.0', { description: 'Beams you up' }),
  ]);
  await index.delete(makeTombstone('enterprise.com/warpcore', '1.1.0'));
  await index.close();
  withRaw(path, toSchemaVersion4);
  const migrated = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => migrated.close());
  const names = withRaw(path, (db) => db.prepare('SELECT name, search_name, invoices FROM bindle_names ORDER BY name').all());
  t.same(names, [
    { name: 'Enterprise.com/Transporter', search_name: 'enterprise.com/transporter', invoices: 1 },
    { name: 'enterprise.com/warpcore', search_name: 'enterprise.com/warpcore', invoices: 1 },
  ]);
  t.notOk(withRaw(path, (db) => db.prepare(`SELECT 1 FROM sqlite_schema WHERE name LIKE 'invoice_fts%'`).get()), 'the old table and its triggers are gone');
  const ask = async (query: string, strict: boolean): Promise<string[]> =>
    (await migrated.query({ query, strict, offset: 0, limit: 10, yanked: false })).invoices.map((i) => `${i.name}/${i.version}`);
  t.same(await ask('Transporter', true), ['Enterprise.com/Transporter/2.0.0']);
  t.same(await ask('transporter', true), [], 'strict terms are case-sensitive');
  t.same(await ask('ENTERPRISE', false), ['Enterprise.com/Transporter/2.0.0', 'enterprise.com/warpcore/1.0.0']);
  t.same(await ask('beams 2.0', false), ['Enterprise.com/Transporter/2.0.0'], 'description and version terms');
  t.equal(withRaw(path, (db) => db.pragma('user_version', { simple: true })), MIGRATIONS.length);
});

t.test('bindle_names holds each name while it has invoices; a term split between name and description does not match', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => index.close());
  await index.insert(makeEntry('names.com/app', '1.0.0', { description: 'cargo' }));
  await index.insert(makeEntry('names.com/app', '2.0.0', { description: 'cargo' }));
  const counts = (): unknown[] => withRaw(path, (db) => db.prepare('SELECT name, invoices FROM bindle_names').all());
  t.same(counts(), [{ name: 'names.com/app', invoices: 2 }]);
  await index.delete(makeTombstone('names.com/app', '2.0.0'));
  t.same(counts(), [{ name: 'names.com/app', invoices: 1 }]);
  t.equal((await index.query({ query: 'names.com', strict: true, offset: 0, limit: 10, yanked: false })).total, 1);
  // search_text is "names.com/app\n1.0.0\ncargo\n": "app\n1" spans two lines, but no term holds whitespace
  t.equal((await index.query({ query: 'app1.0', strict: false, offset: 0, limit: 10, yanked: false })).total, 0);
  t.equal((await index.query({ query: 'app 1.0 cargo', strict: false, offset: 0, limit: 10, yanked: false })).total, 1, 'terms in name, version and description');
  await index.delete(makeTombstone('names.com/app', '1.0.0'));
  t.same(counts(), [], 'the name goes with its last invoice');
  t.equal((await index.query({ query: 'names.com', strict: true, offset: 0, limit: 10, yanked: false })).total, 0);
});

t.test('a standard term found in names, in the rest of the text, or in both, counts each invoice once; yanked ones only when asked', async (t) => {
  const index = SqliteInvoiceIndex.open(':memory:', { backgroundMerge: false });
  t.teardown(() => index.close());
  await index.insertMany([
    makeEntry('fleet.com/shuttle', '1.0.0', { description: 'a shuttle craft' }),
    makeEntry('fleet.com/shuttle', '2.0.0', { description: 'a shuttle craft', yanked: true }),
    makeEntry('fleet.com/runabout', '1.0.0', { description: 'not a shuttle' }),
    makeEntry('fleet.com/runabout', '2.0.0', { description: 'not a shuttle', yanked: true }),
    makeEntry('fleet.com/runabout', '3.0.0', { authors: ['Shuttle Bay'] }),
    makeEntry('fleet.com/probe', '1.0.0', { description: 'no craft' }),
  ]);
  const total = async (query: string, yanked: boolean, version?: string): Promise<number> =>
    (await index.query({ query, strict: false, offset: 0, limit: 1, yanked, ...(version === undefined ? {} : { version }) })).total;
  t.equal(await total('shuttle', false), 3, 'name and text: shuttle 1.0.0 (both), runabout 1.0.0 and 3.0.0');
  t.equal(await total('shuttle', true), 5);
  t.equal(await total('craft', false), 2, 'text only');
  t.equal(await total('craft', true), 3);
  t.equal(await total('runabout', false), 2, 'name only');
  t.equal(await total('shuttle', false, '>=2.0.0'), 1, 'with a version range');
  t.equal(await total('shuttle craft', false), 1, 'two terms');
  t.equal(await total('probe', false), 1);
  t.equal(await total('warp', true), 0);
});

t.test('a file from a newer schema is refused', async (t) => {
  const path = join(t.testdir(), 'index.db');
  await SqliteInvoiceIndex.open(path).close();
  withRaw(path, (db) => db.pragma('user_version = 99'));
  t.throws(() => SqliteInvoiceIndex.open(path), { code: 'unavailable', message: /schema version 99.*up to \d+/ });
});

t.test('a file written without full-text search gets its FTS table built on open', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const plain = SqliteInvoiceIndex.open(path, { fullTextSearch: false });
  t.equal(plain.fullTextSearch, false);
  await plain.insert(makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'The warp core' }));
  await plain.insert(makeEntry('enterprise.com/transporter', '1.0.0'));
  await plain.close();
  t.notOk(withRaw(path, (db) => db.prepare(`SELECT 1 FROM sqlite_schema WHERE name LIKE '%_fts'`).get()));

  const indexed = SqliteInvoiceIndex.open(path);
  t.teardown(() => indexed.close());
  t.equal(indexed.fullTextSearch, true);
  const strict = await indexed.query({ query: 'warpcore', offset: 0, limit: 10, strict: true, yanked: false });
  t.same(strict.invoices.map((i) => i.name), ['enterprise.com/warpcore'], 'existing rows are in the full-text index');
  const standard = await indexed.query({ query: 'WARP CORE', offset: 0, limit: 10, strict: false, yanked: false });
  t.equal(standard.total, 1);
  await indexed.close();
  t.throws(() => SqliteInvoiceIndex.open(path, { fullTextSearch: false }), { code: 'unavailable' }, 'cannot switch back off');
});

t.test('insert is atomic', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const bad = 'd'.repeat(64);
  const index = SqliteInvoiceIndex.open(path);
  t.teardown(() => index.close());
  // Fail the last statement of the insert transaction (the parcel rows).
  withRaw(path, (db) =>
    db.exec(`CREATE TRIGGER fail_parcel BEFORE INSERT ON invoice_parcels WHEN new.sha256 = '${bad}'
             BEGIN SELECT RAISE(ABORT, 'refused by test'); END`),
  );
  await t.rejects(index.insert(makeEntry('half/written', '1.0.0', { parcels: ['a'.repeat(64), bad] })), /refused by test/);
  t.equal(await index.get('half/written', '1.0.0'), undefined);
  t.equal(await index.count(), 0);
  t.same(await index.invoicesWithParcel('a'.repeat(64)), []);
  t.equal((await index.query({ query: 'written', offset: 0, limit: 10, strict: true, yanked: true })).total, 0);
  await index.insert(makeEntry('half/written', '1.0.0', { parcels: ['a'.repeat(64)] }));
  t.equal(await index.count(), 1, 'the id is free again');
});

t.test('insertMany of more rows than one INSERT statement takes stores each entry with its own rows', async (t) => {
  const index = SqliteInvoiceIndex.open(join(t.testdir(), 'index.db'));
  t.teardown(() => index.close());
  const count = 2 * ROWS_PER_INSERT + 7;
  const digest = (i: number): string => i.toString(16).padStart(64, '0');
  const batch = Array.from({ length: count }, (_, i) =>
    makeEntry(`bulk.com/app-${String(i).padStart(5, '0')}`, `1.${i % 7}.0`, { description: `Number n${i}x of the batch`, parcels: [digest(i), digest(count + i)] }),
  );
  await index.insertMany(batch);
  t.equal(await index.count(), count);
  for (const i of [0, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, count - 1]) {
    const entry = batch[i];
    if (entry === undefined) throw new Error(`no entry ${i}`);
    t.same(await index.get(entry.name, entry.version), entry, `entry ${i} is stored as given`);
    t.same(await index.invoicesWithParcel(digest(count + i)), [{ name: entry.name, version: entry.version, yanked: false }], `with its own parcels (${i})`);
    t.equal((await index.ociManifest(entry.name, entry.version))?.digest, buildBindleManifest(Buffer.from(entry.toml), entry.invoice).digest, `and OCI rows (${i})`);
    const found = await index.query({ query: `n${i}x`, offset: 0, limit: 10, strict: false, yanked: false });
    t.same(found.invoices.map((stored) => stored.name), [entry.name], `searchable by its description (${i})`);
  }
  const last = batch[count - 1];
  if (last === undefined) throw new Error('no last entry');
  await t.rejects(
    index.insertMany([makeEntry('bulk.com/new', '1.0.0'), ...Array.from({ length: ROWS_PER_INSERT }, (_, i) => makeEntry('bulk.com/more', `2.0.${i}`)), last]),
    { code: 'already_exists', message: new RegExp(`${last.name}/${last.version}`) },
    'a taken id in a later statement is named',
  );
  t.equal(await index.count(), count, 'and nothing of that batch stays');
});

t.test('compactFullText merges the full-text index into one segment; queries find the same', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path);
  t.teardown(() => index.close());
  for (let i = 0; i < 40; i++) await index.insert(makeEntry(`compact.com/app-${i}`, '1.0.0', { description: `The ${i % 2 === 0 ? 'even' : 'odd'} one` }));
  const before = await index.query({ query: 'even', offset: 0, limit: 50, strict: false, yanked: false });
  t.ok(ftsSegments(path) > 2, 'single inserts leave several segments');
  await index.compactFullText();
  t.equal(ftsSegments(path), 2, 'one per full-text table');
  t.same(await index.query({ query: 'even', offset: 0, limit: 50, strict: false, yanked: false }), before);
  t.equal(before.total, 20);
  const plain = SqliteInvoiceIndex.open(':memory:', { fullTextSearch: false });
  t.teardown(() => plain.close());
  await plain.compactFullText();
  t.pass('a no-op without full-text search');
});

/** The full-text tables of the index file. */
const FULL_TEXT_TABLES = ['bindle_name_fts', 'invoice_text_fts'];

/** The number of segments of the index file's full-text indexes, together. */
function ftsSegments(path: string): number {
  return withRaw(path, (db) =>
    FULL_TEXT_TABLES.reduce((sum, table) => sum + (db.prepare(`SELECT count(DISTINCT segid) FROM ${table}_idx`).pluck().get() as number), 0),
  );
}

t.test('mergeFullText merges the segments FTS5 automerge leaves (usermerge 2); queries find the same; then nothing is left to merge', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => index.close());
  for (const table of FULL_TEXT_TABLES) {
    t.equal(withRaw(path, (db) => db.prepare(`SELECT v FROM ${table}_config WHERE k = 'usermerge'`).pluck().get()), FTS_USERMERGE, `${table}: set at open`);
  }
  for (let i = 0; i < 60; i++) await index.insert(makeEntry(`merge.com/app-${i}`, '1.0.0', { description: `The ${i % 3 === 0 ? 'third' : 'other'} one` }));
  const before = await index.query({ query: 'third', offset: 0, limit: 50, strict: false, yanked: false });
  const unmerged = ftsSegments(path);
  t.ok(unmerged > 3, `single inserts leave several segments (${unmerged})`);
  await index.mergeFullText();
  const merged = ftsSegments(path);
  t.ok(merged < unmerged, `fewer segments (${unmerged} → ${merged})`);
  t.same(await index.query({ query: 'third', offset: 0, limit: 50, strict: false, yanked: false }), before);
  t.equal(before.total, 20);
  await index.mergeFullText();
  t.equal(ftsSegments(path), merged, 'a second merge finds nothing to do');
  const plain = SqliteInvoiceIndex.open(':memory:', { fullTextSearch: false });
  t.teardown(() => plain.close());
  await plain.mergeFullText();
  t.pass('a no-op without full-text search');
});

t.test('an index merges its full-text segments in the background after writes; not with backgroundMerge: false', async (t) => {
  const dir = t.testdir();
  const [live, still] = [join(dir, 'live.db'), join(dir, 'still.db')];
  const indexes = [SqliteInvoiceIndex.open(live), SqliteInvoiceIndex.open(still, { backgroundMerge: false })];
  t.teardown(() => Promise.all(indexes.map((index) => index.close())));
  for (let i = 0; i < 60; i++) {
    for (const index of indexes) await index.insert(makeEntry(`background.com/app-${i}`, '1.0.0'));
  }
  const unmerged = ftsSegments(still);
  t.ok(unmerged > 3, `several segments (${unmerged})`);
  // Bounded wait (generous for a loaded machine): the background steps run 20 ms apart.
  let segments = ftsSegments(live);
  for (let i = 0; i < 600 && segments >= unmerged; i++) {
    await sleep(100);
    segments = ftsSegments(live);
  }
  t.ok(segments < unmerged, `merged in the background (${unmerged} → ${segments})`);
  t.equal(ftsSegments(still), unmerged, 'the index without background merging kept its segments');
  const merged = SqliteInvoiceIndex.open(still, { backgroundMerge: false });
  await merged.mergeFullText();
  await merged.close();
  for (let i = 0; i < 600 && ftsSegments(live) > ftsSegments(still); i++) await sleep(100);
  t.equal(ftsSegments(live), ftsSegments(still), 'the background merging goes as far as mergeFullText');
});

t.test('open backfills OCI rows only when migrating from before the OCI tables, not at every open (it reads every invoice)', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path);
  await index.insert(makeEntry('open/scan', '1.0.0'));
  await index.close();
  // A state no insert leaves at this schema version: if open looked for invoices without OCI rows, it would fill this in.
  withRaw(path, (db) => db.exec('DELETE FROM oci_manifests; DELETE FROM oci_configs'));
  const reopened = SqliteInvoiceIndex.open(path);
  t.teardown(() => reopened.close());
  t.equal(await reopened.ociManifest('open/scan', '1.0.0'), undefined, 'not scanned for at open');
});

t.test('entries must be self-consistent', async (t) => {
  const index = SqliteInvoiceIndex.open(':memory:');
  t.teardown(() => index.close());
  const good = makeEntry('a/b', '1.0.0');
  await t.rejects(index.insert({ ...good, canonicalId: 'f'.repeat(64) }), { code: 'invalid_invoice' });
  await t.rejects(index.insert({ ...good, name: 'a/c' }), { code: 'invalid_invoice' });
  await t.rejects(index.insert({ ...good, version: 'v1.0.0' }), { code: 'invalid_version' });
  await t.rejects(index.insert({ ...good, name: 'a/../b' }), { code: 'invalid_name' });
  await t.rejects(index.insert(makeEntry('a/b', '1.0.0', { parcels: ['ABC'] })), { code: 'invalid_invoice' });
  t.equal(await index.count(), 0);
});

t.test('a closed index refuses calls', async (t) => {
  const index = SqliteInvoiceIndex.open(':memory:');
  await index.close();
  await index.close();
  await t.rejects(index.count(), { code: 'unavailable' });
  await t.rejects(index.get('a', '1.0.0'), { code: 'unavailable' });
  await t.rejects(index.insert(makeEntry('a', '1.0.0')), { code: 'unavailable' });
});

t.test('an index from before the OCI tables gets deterministic OCI rows from its current TOML at open', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path);
  const kept = makeEntry('old/kept', '1.0.0');
  await index.insert(kept);
  await index.insert(makeEntry('old/yanked', '1.0.0'));
  const yanked = makeEntry('old/yanked', '1.0.0', { yanked: true });
  t.equal(await index.yank(yanked), true);
  await index.close();
  withRaw(path, (db) => {
    toSchemaVersion4(db);
    db.exec('DROP TABLE oci_manifests; DROP TABLE oci_configs; DROP TABLE tombstones; DROP TABLE oci_uploads');
    db.pragma('user_version = 1');
  });
  const reopened = SqliteInvoiceIndex.open(path);
  t.teardown(() => reopened.close());
  t.equal((await reopened.ociManifest('old/kept', '1.0.0'))?.digest, buildBindleManifest(Buffer.from(kept.toml), kept.invoice).digest);
  t.equal(
    (await reopened.ociManifest('old/yanked', '1.0.0'))?.digest,
    buildBindleManifest(Buffer.from(yanked.toml), yanked.invoice).digest,
    'a yanked invoice: the manifest of its yanked TOML',
  );
  t.equal(withRaw(path, (db) => db.pragma('user_version', { simple: true })), MIGRATIONS.length);
});

/**
 * Starts a process that takes the write lock of the index file at `path` and keeps it for
 * `holdMs`, then creates the file `released()` names just before it commits; resolves once it
 * holds the lock. (A file, not its output: an open blocks this process's event loop while it waits.)
 */
async function holdWriteLock(t: Test, path: string, holdMs: number): Promise<{ released: () => boolean; exited: Promise<number | null> }> {
  const marker = `${path}.released`;
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const db = new (require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))}))(${JSON.stringify(path)});
       db.exec('BEGIN IMMEDIATE'); console.log('locked');
       setTimeout(() => { require('node:fs').writeFileSync(${JSON.stringify(marker)}, ''); db.exec('COMMIT'); db.close(); }, ${holdMs});`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => holder.kill());
  const exited = new Promise<number | null>((resolve) => holder.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('exit', () => reject(new Error('the lock holder exited before it locked')));
  });
  return { released: () => existsSync(marker), exited };
}

t.test('an open that must upgrade the schema waits while another process holds the write lock for longer than the busy timeout (its own upgrade), then opens', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index4 = SqliteInvoiceIndex.open(path);
  await index4.insert(makeEntry('old/kept', '1.0.0'));
  await index4.close();
  withRaw(path, toSchemaVersion4);
  // Another process takes the write lock and keeps it for longer than the busy timeout below.
  const holder = await holdWriteLock(t, path, 1500);
  const index = SqliteInvoiceIndex.open(path, { busyTimeoutMs: 100 });
  t.teardown(() => index.close());
  t.ok(holder.released(), 'the open waited for the other process to let go of the lock');
  t.equal(await holder.exited, 0, 'the other process committed and left');
  t.equal((await index.query({ query: 'old/kept', strict: true, offset: 0, limit: 10, yanked: false })).total, 1, 'and the open brought the file up to date once it had');
  t.equal(withRaw(path, (db) => db.pragma('user_version', { simple: true })), MIGRATIONS.length);
});

t.test('an open of an up-to-date file does not wait for the write lock another process holds', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const first = SqliteInvoiceIndex.open(path);
  await first.insert(makeEntry('kept/one', '1.0.0'));
  await first.close();
  // Held far longer than any open takes; the open must return while it is still held.
  const holder = await holdWriteLock(t, path, 120_000);
  const index = SqliteInvoiceIndex.open(path, { busyTimeoutMs: 100 });
  t.teardown(() => index.close());
  t.notOk(holder.released(), 'the open returned while the other process still held the lock');
  t.equal((await index.query({ query: 'kept/one', strict: true, offset: 0, limit: 10, yanked: false })).total, 1, 'and reads the file');
});
