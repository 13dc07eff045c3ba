/**
 * kill -9 of a real server process in the middle of concurrent creates and yanks never leaves
 * the index and the stored data disagreeing, on both index backends (the default SQLite, and
 * PostgreSQL when BINDLE_TEST_POSTGRES_URL is set: skipped without it, failed under CI=true).
 * After a restart every acknowledged create and yank is there, every invoice is served as stored
 * (whole, with the host's signature, yanked exactly when its document is), the SQLite index file
 * is intact, and no invoice file or temp file is left behind (the index is the only record of
 * invoices).
 */
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { freshDatabase, postgresUrl } from '../helpers/postgres.js';
import { createHostKeys, startServerProcess } from '../helpers/server-process.js';

const keyring = vec('scaffolds', 'keys', 'keyring.toml');
const ROUNDS = 3;
const CREATES = 32;

/** Files in `dir` and below, relative. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

/**
 * Runs ROUNDS of CREATES concurrent creates (and yanks of what earlier rounds created) against a
 * server on `dir` started with `args`, killing it -9 mid-flight each round; then restarts it and
 * checks every invoice through the API. `indexFile` matches the index's own files in `dir`.
 */
async function killDuringCreatesAndYanks(t: Test, dir: string, args: string[], indexFile: RegExp): Promise<void> {
  const created = new Set<string>();
  const yanked = new Set<string>();
  for (let round = 0; round < ROUNDS; round++) {
    const server = await startServerProcess(t, { directory: dir, args });
    const previous = [...created].filter((id) => !yanked.has(id));
    const requests: Array<Promise<void>> = [];
    for (let i = 0; i < CREATES; i++) {
      const invoice = signedInvoice(`kill.example/app-${round}-${i}`, '1.0.0', [{ name: 'p', data: Buffer.from(`${round}/${i}`) }]);
      const id = `${invoice.bindle.name}/1.0.0`;
      requests.push(
        fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(invoice, 'toml') })
          .then((res) => {
            if (res.status === 201 || res.status === 202) created.add(id);
          })
          .catch(() => undefined),
      );
      const victim = previous[i];
      if (victim !== undefined) {
        requests.push(
          fetch(`${server.url}_i/${victim}`, { method: 'DELETE' })
            .then((res) => {
              if (res.status === 200) yanked.add(victim);
            })
            .catch(() => undefined),
        );
      }
    }
    // Kill once a few requests were answered, while the rest are in flight.
    await Promise.race([Promise.all(requests.slice(0, 4)), new Promise((resolve) => setTimeout(resolve, 5000))]);
    server.child.kill('SIGKILL');
    await Promise.all(requests);
    await server.stop();
  }
  t.ok(created.size > 0, `${created.size} creates acknowledged before the kills`);
  t.ok(yanked.size > 0, `${yanked.size} yanks acknowledged before the kills`);

  const server = await startServerProcess(t, { directory: dir, args });
  const hostKeys = await (await fetch(`${server.url}bindle-keys`)).text();
  const listed = await fetch(`${server.url}_q?yanked=true&limit=255`, { headers: { accept: 'application/json' } });
  const reply = (await listed.json()) as { total: number; invoices: Array<{ bindle: { name: string; version: string }; yanked?: boolean }> };
  t.equal(reply.total, reply.invoices.length, 'one page holds every invoice');
  const indexed = new Set(reply.invoices.map((i) => `${i.bindle.name}/${i.bindle.version}`));
  for (const id of created) t.ok(indexed.has(id), `acknowledged create ${id} is indexed`);
  for (const id of indexed) {
    const res = await fetch(`${server.url}_i/${id}?yanked=true`);
    t.equal(res.status, 200, id);
    const document = parseInvoice(await res.text());
    t.equal(document.parcel?.length, 1, `${id}: the whole invoice is stored`);
    const host = (document.signature ?? []).filter((s) => s.role === 'host');
    t.ok(host.length === 1 && hostKeys.includes(host[0]?.key ?? '-'), `${id}: signed by this host`);
    const isYanked = document.yanked === true;
    t.equal(isYanked, (document.yankedSignature?.length ?? 0) > 0, `${id}: yanked exactly when host-signed as yanked`);
    t.equal((await fetch(`${server.url}_i/${id}`)).status, isYanked ? 403 : 200, `${id}: served as its document says`);
    if (yanked.has(id)) t.ok(isYanked, `acknowledged yank of ${id} holds`);
  }
  await server.stop();

  const leftovers = filesUnder(dir).filter((f) => !f.startsWith('parcels/') && !indexFile.test(f) && !f.endsWith('.toml'));
  t.same(leftovers, [], 'no temp files');
  t.same(filesUnder(dir).filter((f) => f.startsWith('invoices')), [], 'no invoice files');
}

t.test('kill -9 during creates and yanks: SQLite index', async (t) => {
  const dir = t.testdir();
  await killDuringCreatesAndYanks(t, dir, ['--keyring', keyring], /^index\.sqlite(-wal|-shm)?$/);
  const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the index file is intact');
  db.close();
});

t.test('kill -9 during creates and yanks: PostgreSQL index', async (t) => {
  const url = postgresUrl(t);
  if (url === undefined) return;
  const dir = t.testdir();
  // A shared index never creates a host key by itself: supply one, as a deployment does.
  const hostKeys = createHostKeys(t, dir);
  const args = ['--index', await freshDatabase(t, url), '--signing-keys', hostKeys, '--keyring', keyring];
  await killDuringCreatesAndYanks(t, dir, args, /^$/);
});
