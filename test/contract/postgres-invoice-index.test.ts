/**
 * PostgresInvoiceIndex against a real PostgreSQL (BINDLE_TEST_POSTGRES_URL): the InvoiceIndex
 * contract, as SqliteInvoiceIndex runs it, plus what is PostgreSQL's own: migrations under
 * concurrent openers, the schema version check, and the cache across instances.
 */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import pg from 'pg';
import { buildBindleManifest } from '../../core/oci/index.js';
import { FEW_MATCHES, PostgresInvoiceIndex } from '../../server/storage/postgres-invoice-index.js';
import { postgresUrl, schemaPool } from '../helpers/postgres.js';
import { insertManyContract, invoiceIndexContract, makeEntry } from './invoice-index-contract.js';

const url = postgresUrl(t);
if (url !== undefined) {
  const schemaFor = schemaPool(t, url);
  invoiceIndexContract(t, 'PostgresInvoiceIndex', async (dir) => PostgresInvoiceIndex.open(url, { schema: await schemaFor(dir), poolSize: 4 }));
  insertManyContract(t, 'PostgresInvoiceIndex', async (dir) => PostgresInvoiceIndex.open(url, { schema: await schemaFor(dir), poolSize: 4 }));

  /** Two instances (replicas) on one fresh schema, closed when `t` ends. */
  const writerAndReader = async (t: Test): Promise<{ schema: string; writer: PostgresInvoiceIndex; reader: PostgresInvoiceIndex }> => {
    const schema = await schemaFor(t.testdir());
    const writer = await PostgresInvoiceIndex.open(url, { schema, poolSize: 2 });
    const reader = await PostgresInvoiceIndex.open(url, { schema, poolSize: 2 });
    t.teardown(async () => {
      await writer.close();
      await reader.close();
    });
    return { schema, writer, reader };
  };

  t.test('replicas starting together migrate once and share the data', async (t) => {
    const schema = await schemaFor(t.testdir());
    const indexes = await Promise.all(Array.from({ length: 4 }, () => PostgresInvoiceIndex.open(url, { schema, poolSize: 2 })));
    t.teardown(() => Promise.all(indexes.map((ix) => ix.close())));
    await indexes[0]?.insert(makeEntry('enterprise.com/warpcore', '1.0.0'));
    for (const ix of indexes) t.equal(await ix.count(), 1);
    const reopened = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    t.equal(await reopened.count(), 1, 'reopening migrates nothing');
    await reopened.close();
  });

  t.test('while its listener connection is lost, an instance reads through; a yank is still seen within 1 s', async (t) => {
    const { schema, writer, reader } = await writerAndReader(t);
    for (let round = 0; round < 3; round++) {
      const version = `1.0.${round}`;
      await writer.insert(makeEntry('enterprise.com/warpcore', version));
      for (let i = 0; i < 3; i++) t.equal((await reader.get('enterprise.com/warpcore', version))?.yanked, false, 'read, maybe cached');
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      // A listener is up once it has run LISTEN (its last query then, or its checks' `SELECT 1`).
      const listeners = `FROM pg_stat_activity WHERE application_name = $1 AND (query LIKE 'LISTEN%' OR query = 'SELECT 1')`;
      const name = [`bindle-server listener ${schema}`];
      // Wait (bounded) until both listeners are (back) up.
      for (let i = 0; i < 300 && (await admin.query(`SELECT 1 ${listeners}`, name)).rowCount !== 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Both listeners die: the writer's notification goes nowhere.
      const killed = await admin.query(`SELECT pg_terminate_backend(pid) ${listeners}`, name);
      await admin.end();
      t.equal(killed.rowCount, 2, 'both listener connections terminated');
      t.equal(await writer.yank(makeEntry('enterprise.com/warpcore', version, { yanked: true })), true);
      const deadline = Date.now() + 1000;
      let seen = false;
      while (!seen && Date.now() < deadline) {
        seen = (await reader.get('enterprise.com/warpcore', version))?.yanked === true;
        if (!seen) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      t.ok(seen, `round ${round}: the yank is seen within 1 s`);
    }
  });

  t.test('cachedInvoice: another instance\'s yank empties it (NOTIFY), and so does losing the listener', async (t) => {
    const { schema, writer, reader } = await writerAndReader(t);
    const id = ['enterprise.com/warpcore', '1.0.0'] as const;
    await writer.insert(makeEntry(...id));
    t.equal(reader.cachedInvoice(...id), undefined, 'not cached before it is read');
    await reader.get(...id);
    t.equal(reader.cachedInvoice(...id)?.yanked, false, 'cached once read');
    await writer.yank(makeEntry(...id, { yanked: true }));
    const deadline = Date.now() + 3000;
    while (reader.cachedInvoice(...id) !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    t.equal(reader.cachedInvoice(...id), undefined, 'the other instance\'s yank empties the cache');
    t.equal((await reader.get(...id))?.yanked, true);
    t.equal(reader.cachedInvoice(...id)?.yanked, true, 'and the cache then holds the yanked invoice');

    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    t.teardown(() => admin.end());
    const killed = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`,
      [`bindle-server listener ${schema}`],
    );
    t.equal(killed.rowCount, 2, 'both listener connections terminated');
    const lostBy = Date.now() + 3000;
    while (reader.cachedInvoice(...id) !== undefined && Date.now() < lostBy) await new Promise((resolve) => setTimeout(resolve, 10));
    t.equal(reader.cachedInvoice(...id), undefined, 'a lost listener empties the cache');
  });

  t.test('a listener connection that dies without a sign stops the cache within the listener timeout', async (t) => {
    // The reader reaches PostgreSQL through a relay that can stop forwarding without closing
    // anything, as a dropped route or a vanished host does: no error reaches the reader.
    const relay = await tcpRelay(t, new URL(url));
    const schema = await schemaFor(t.testdir());
    const writer = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    const reader = await PostgresInvoiceIndex.open(relay.url, { schema, poolSize: 1, listenerTimeoutMs: 500 });
    t.teardown(async () => {
      relay.thaw();
      await reader.close();
      await writer.close();
    });
    const id = ['enterprise.com/warpcore', '1.0.0'] as const;
    await writer.insert(makeEntry(...id));
    await reader.get(...id);
    t.equal(reader.cachedInvoice(...id)?.yanked, false, 'cached once read');
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.equal(reader.cachedInvoice(...id)?.yanked, false, 'still trusted while the checks answer');

    relay.freeze();
    t.equal(await writer.yank(makeEntry(...id, { yanked: true })), true, 'yanked; its notification cannot reach the reader');
    const deadline = Date.now() + 10_000;
    while (reader.cachedInvoice(...id) !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(reader.cachedInvoice(...id), undefined, 'the unyanked invoice is no longer served from the cache');

    relay.thaw();
    t.equal((await reader.get(...id))?.yanked, true, 'once the route is back, a read sees the yank');
    const relistenBy = Date.now() + 10_000;
    while (reader.cachedInvoice(...id)?.yanked !== true && Date.now() < relistenBy) {
      await reader.get(...id);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    t.equal(reader.cachedInvoice(...id)?.yanked, true, 'and the listener is back: the cache holds the yanked invoice');
  });

  t.test('a statement on a connection that died without a sign fails as unavailable within the query timeout; the next gets a new connection', async (t) => {
    const relay = await tcpRelay(t, new URL(url));
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(relay.url, { schema, poolSize: 2, queryTimeoutMs: 300 });
    t.teardown(async () => {
      relay.thaw();
      await index.close();
    });
    await index.insert(makeEntry('enterprise.com/warpcore', '1.0.0'));
    relay.freeze();
    await t.rejects(index.count(), { code: 'unavailable', message: /Query read timeout/ }, 'a statement sent into the void');
    await t.rejects(index.insert(makeEntry('enterprise.com/warpcore', '1.0.1')), { code: 'unavailable' }, 'a transaction too');
    relay.thaw();
    t.equal(await index.count(), 1, 'answered once the route is back; the transaction left nothing');
    await index.insert(makeEntry('enterprise.com/warpcore', '1.0.1'));
    t.equal(await index.count(), 2);
  });

  t.test('a schema from a newer server is refused', async (t) => {
    const schema = await schemaFor(t.testdir());
    await (await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 })).close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`UPDATE "${schema}".bindle_schema_version SET version = 99`);
    await client.end();
    await t.rejects(PostgresInvoiceIndex.open(url, { schema }), { code: 'unavailable', message: /version 99.*up to \d+/ });
  });

  t.test('a schema from before the OCI tables gets deterministic OCI rows from its current TOML at open', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    const kept = makeEntry('old/kept', '1.0.0');
    await index.insert(kept);
    await index.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP INDEX "${schema}".invoice_parcels_sha256; ALTER TABLE "${schema}".invoice_parcels DROP COLUMN size; CREATE INDEX invoice_parcels_sha256 ON "${schema}".invoice_parcels (sha256); DROP TABLE "${schema}".oci_manifests, "${schema}".oci_configs, "${schema}".tombstones, "${schema}".oci_uploads, "${schema}".oci_blob_links; UPDATE "${schema}".bindle_schema_version SET version = 1`);
    await client.end();
    const reopened = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    t.teardown(() => reopened.close());
    t.equal((await reopened.ociManifest('old/kept', '1.0.0'))?.digest, buildBindleManifest(Buffer.from(kept.toml), kept.invoice).digest);
  });

  t.test('a schema of version 6 gets each listed parcel\'s label size from the stored invoices; sizes already disagreeing stay', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    await index.insert(makeEntry('old/m', '1.0.0', { parcels: ['a'.repeat(64), 'b'.repeat(64)], sizes: [7, 8] }));
    await index.insert(makeEntry('old/n', '1.0.0', { parcels: ['b'.repeat(64)], sizes: [8] }));
    await index.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    t.teardown(() => client.end());
    await client.query(`DROP INDEX "${schema}".invoice_parcels_sha256; ALTER TABLE "${schema}".invoice_parcels DROP COLUMN size; CREATE INDEX invoice_parcels_sha256 ON "${schema}".invoice_parcels (sha256); UPDATE "${schema}".bindle_schema_version SET version = 6`);
    const migrated = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    t.teardown(() => migrated.close());
    const sizes = await client.query(`SELECT i.name, p.sha256, p.size::int AS size FROM "${schema}".invoice_parcels p JOIN "${schema}".invoices i ON i.id = p.invoice_id ORDER BY i.name, p.sha256`);
    t.same(sizes.rows, [
      { name: 'old/m', sha256: 'a'.repeat(64), size: 7 },
      { name: 'old/m', sha256: 'b'.repeat(64), size: 8 },
      { name: 'old/n', sha256: 'b'.repeat(64), size: 8 },
    ], 'filled from the invoice records');
    await t.rejects(migrated.insert(makeEntry('new/x', '1.0.0', { parcels: ['a'.repeat(64)], sizes: [6] })), { code: 'size_mismatch', message: /old\/m\/1\.0\.0 lists it with 7 bytes/ });
    await migrated.insert(makeEntry('new/x', '1.0.0', { parcels: ['a'.repeat(64)], sizes: [7] }));
    // Invoices of one parcel disagreeing, as a server before the rule could store them.
    await client.query(`UPDATE "${schema}".invoice_parcels SET size = 9 WHERE invoice_id = (SELECT id FROM "${schema}".invoices WHERE name = 'old/n')`);
    for (const size of [8, 9]) {
      await t.rejects(migrated.insert(makeEntry('new/y', '1.0.0', { parcels: ['b'.repeat(64)], sizes: [size] })), { code: 'size_mismatch' }, `${size} differs from one of them`);
    }
    t.equal((await migrated.invoicesWithParcel('b'.repeat(64))).length, 2, 'the disagreeing invoices stay');
  });

  t.test('a schema of version 5 (before blob links) gets the links table, empty; its invoices stay', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    await index.insert(makeEntry('old/app', '1.0.0'));
    await index.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP INDEX "${schema}".invoice_parcels_sha256; ALTER TABLE "${schema}".invoice_parcels DROP COLUMN size; CREATE INDEX invoice_parcels_sha256 ON "${schema}".invoice_parcels (sha256); DROP TABLE "${schema}".oci_blob_links; UPDATE "${schema}".bindle_schema_version SET version = 5`);
    await client.end();
    const reopened = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    t.teardown(() => reopened.close());
    t.same(await reopened.ociBlobLinkPage(undefined, 10), [], 'no links yet');
    await reopened.linkOciBlob({ name: 'old/app', sha256: 'a'.repeat(64), linkedAt: 1 });
    t.equal(await reopened.ociBlobLinked('old/app', 'a'.repeat(64)), true, 'links are kept');
    t.same(await reopened.ociRepositories(undefined, 10), { names: ['old/app'], more: false }, 'the invoices stay');
  });

  t.test('open backfills OCI rows only when migrating from before the OCI tables, not at every open (it reads every invoice)', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    await index.insert(makeEntry('open/scan', '1.0.0'));
    await index.close();
    // A state no insert leaves at this schema version: if open looked for invoices without OCI rows, it would fill this in.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DELETE FROM "${schema}".oci_manifests; DELETE FROM "${schema}".oci_configs`);
    await client.end();
    const reopened = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    t.teardown(() => reopened.close());
    t.equal(await reopened.ociManifest('open/scan', '1.0.0'), undefined, 'not scanned for at open');
  });

  t.test('bad URLs and schema names are invalid_config; an unreachable database is unavailable', async (t) => {
    await t.rejects(PostgresInvoiceIndex.open('mysql://x'), { code: 'invalid_config' });
    await t.rejects(PostgresInvoiceIndex.open(url, { listenerTimeoutMs: 10 }), { code: 'invalid_config', message: /listener timeout/ });
    await t.rejects(PostgresInvoiceIndex.open(url, { queryTimeoutMs: 1.5 }), { code: 'invalid_config', message: /query timeout/ });
    await t.rejects(PostgresInvoiceIndex.open(url, { schema: 'Robert"; DROP' }), { code: 'invalid_config' });
    await t.rejects(PostgresInvoiceIndex.open('postgres://bindle@127.0.0.1:1/none'), { code: 'unavailable' });
    const schema = await schemaFor(t.testdir());
    const otherPath = `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c search_path=elsewhere')}`;
    await t.rejects(PostgresInvoiceIndex.open(otherPath, { schema, poolSize: 1 }), { code: 'invalid_config', message: /search_path/ });
  });

  t.test('a closed index refuses calls', async (t) => {
    const index = await PostgresInvoiceIndex.open(url, { schema: await schemaFor(t.testdir()), poolSize: 1 });
    await index.close();
    await index.close();
    await t.rejects(index.count(), { code: 'unavailable' });
    await t.rejects(index.get('a', '1.0.0'), { code: 'unavailable' });
    await t.rejects(index.insert(makeEntry('a', '1.0.0')), { code: 'unavailable' });
  });

  t.test('a failed insert leaves nothing behind', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 2 });
    t.teardown(() => index.close());
    const bad = 'd'.repeat(64);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`CREATE FUNCTION "${schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$`);
    await client.query(`CREATE TRIGGER refuse BEFORE INSERT ON "${schema}".invoice_parcels FOR EACH ROW WHEN (new.sha256 = '${bad}') EXECUTE FUNCTION "${schema}".refuse()`);
    await client.end();
    await t.rejects(index.insert(makeEntry('half/written', '1.0.0', { parcels: ['a'.repeat(64), bad] })), /refused by test/);
    t.equal(await index.get('half/written', '1.0.0'), undefined);
    t.equal(await index.count(), 0);
    t.same(await index.invoicesWithParcel('a'.repeat(64)), []);
    await index.insert(makeEntry('half/written', '1.0.0', { parcels: ['a'.repeat(64)] }));
    t.equal(await index.count(), 1, 'the id is free again');
  });

  t.test('the trigram indexes take new rows directly (no GIN pending list that every search scans)', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 1 });
    t.teardown(() => index.close());
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    t.teardown(() => client.end());
    const { rows } = await client.query<{ relname: string; reloptions: string[] | null }>(
      `SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname IN ('invoices_name_trgm', 'invoices_search_trgm') ORDER BY c.relname`,
      [schema],
    );
    t.same(rows, [
      { relname: 'invoices_name_trgm', reloptions: ['fastupdate=off'] },
      { relname: 'invoices_search_trgm', reloptions: ['fastupdate=off'] },
    ]);
  });

  t.test('queries with more matches than one statement counts (FEW_MATCHES) page and count like those with fewer', async (t) => {
    const schema = await schemaFor(t.testdir());
    const index = await PostgresInvoiceIndex.open(url, { schema, poolSize: 2 });
    t.teardown(() => index.close());
    // More than FEW_MATCHES also without the yanked ones.
    const many = Math.ceil((FEW_MATCHES * 7) / 6) + 10;
    const names = Array.from({ length: many }, (_, i) => `many.example/app-${String(i).padStart(5, '0')}`);
    // Inserted out of name order, every 7th yanked; one name with two versions (SemVer descending).
    const entries = names.map((name, i) => makeEntry(name, '1.0.0', { yanked: i % 7 === 0 })).reverse();
    entries.push(makeEntry(names[1] ?? '', '1.10.0'), makeEntry('other.example/app-00001', '1.0.0'));
    await index.insertMany(entries);
    const expected = (term: string, yanked: boolean): string[] =>
      entries
        .filter((e) => e.name.includes(term) && (yanked || !e.yanked))
        .sort((a, b) => (a.name === b.name ? (a.version === '1.10.0' ? -1 : 1) : a.name < b.name ? -1 : 1))
        .map((e) => `${e.name}@${e.version}`);
    for (const [term, yanked] of [['many.', false], ['many.', true], ['app-0000', false], ['app-0000', true], ['nothing', false]] as const) {
      const all = expected(term, yanked);
      if (term === 'many.') t.ok(all.length > FEW_MATCHES, `${term} yanked=${String(yanked)}: more than FEW_MATCHES`);
      for (const offset of [0, 1, 5, 48, all.length - 3, all.length, all.length + 10].filter((o) => o >= 0)) {
        const page = await index.query({ query: term, strict: true, yanked, offset, limit: 50 });
        t.equal(page.total, all.length, `${term} yanked=${String(yanked)} total at ${offset}`);
        t.same(page.invoices.map((e) => `${e.name}@${e.version}`), all.slice(offset, offset + 50), `${term} yanked=${String(yanked)} page at ${offset}`);
      }
    }
  });
}

/**
 * A TCP relay on 127.0.0.1 to the database in `target` (a postgres:// URL with a host and port);
 * `url` is `target` through the relay. freeze() stops moving bytes on every open connection in
 * both directions, closing nothing, and holds new ones the same way; thaw() moves them all again.
 */
async function tcpRelay(t: Test, target: URL): Promise<{ url: string; freeze: () => void; thaw: () => void }> {
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const flow = (pair: [Socket, Socket], on: boolean): void => {
    const [near, far] = pair;
    if (on) {
      near.pipe(far);
      far.pipe(near);
    } else {
      near.unpipe(far);
      far.unpipe(near);
      near.pause();
      far.pause();
    }
  };
  const server = createServer((near) => {
    const far = connect(Number(target.port || 5432), target.hostname);
    const pair: [Socket, Socket] = [near, far];
    pairs.add(pair);
    for (const socket of pair) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        pairs.delete(pair);
        near.destroy();
        far.destroy();
      });
    }
    if (!frozen) flow(pair, true);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const [near, far] of pairs) {
      near.destroy();
      far.destroy();
    }
    server.close();
    await once(server, 'close');
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  const url = new URL(target.href);
  url.hostname = '127.0.0.1';
  url.port = String(address.port);
  return {
    url: url.href,
    freeze: () => {
      frozen = true;
      for (const pair of pairs) flow(pair, false);
    },
    thaw: () => {
      if (!frozen) return;
      frozen = false;
      for (const pair of pairs) flow(pair, true);
    },
  };
}
