import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { setTimeout as sleep } from 'node:timers/promises';
import { FTS_USERMERGE, MIGRATIONS, RECENT_RECHECK_MS, ROWS_PER_INSERT, SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';
import { buildBindleManifest } from '../../core/oci/index.js';
import { insertManyContract, invoiceIndexContract, makeEntry } from './invoice-index-contract.js';

invoiceIndexContract(t, 'SqliteInvoiceIndex (FTS5)', (dir) => Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'))));
invoiceIndexContract(t, 'SqliteInvoiceIndex (scan fallback)', (dir) =>
  Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'), { fullTextSearch: false })),
);
insertManyContract(t, 'SqliteInvoiceIndex', (dir) => Promise.resolve(SqliteInvoiceIndex.open(join(dir, 'index.db'))));

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

t.test('a reader sees what another connection commits (once RECENT_RECHECK_MS passed), though it read the invoice before', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const reader = SqliteInvoiceIndex.open(path);
  const writer = SqliteInvoiceIndex.open(path);
  t.teardown(async () => {
    await reader.close();
    await writer.close();
  });
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
  t.notOk(withRaw(path, (db) => db.prepare(`SELECT 1 FROM sqlite_schema WHERE name = 'invoice_fts'`).get()));

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
  const segments = (): number => withRaw(path, (db) => db.prepare('SELECT count(DISTINCT segid) FROM invoice_fts_idx').pluck().get() as number);
  const before = await index.query({ query: 'even', offset: 0, limit: 50, strict: false, yanked: false });
  t.ok(segments() > 1, 'single inserts leave several segments');
  await index.compactFullText();
  t.equal(segments(), 1);
  t.same(await index.query({ query: 'even', offset: 0, limit: 50, strict: false, yanked: false }), before);
  t.equal(before.total, 20);
  const plain = SqliteInvoiceIndex.open(':memory:', { fullTextSearch: false });
  t.teardown(() => plain.close());
  await plain.compactFullText();
  t.pass('a no-op without full-text search');
});

/** The number of segments of the index file's full-text index. */
function ftsSegments(path: string): number {
  return withRaw(path, (db) => db.prepare('SELECT count(DISTINCT segid) FROM invoice_fts_idx').pluck().get() as number);
}

t.test('mergeFullText merges the segments FTS5 automerge leaves (usermerge 2); queries find the same; then nothing is left to merge', async (t) => {
  const path = join(t.testdir(), 'index.db');
  const index = SqliteInvoiceIndex.open(path, { backgroundMerge: false });
  t.teardown(() => index.close());
  t.equal(withRaw(path, (db) => db.prepare(`SELECT v FROM invoice_fts_config WHERE k = 'usermerge'`).pluck().get()), FTS_USERMERGE, 'set at open');
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
