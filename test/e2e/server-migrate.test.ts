/**
 * `bindle-server migrate` on the real built binary, sqlite+file → sqlite+file: every parcel and
 * every invoice (byte for byte, signatures and yank state included) arrives; a second run copies
 * nothing; a run after losing part of the destination copies just that back; a missing source
 * is refused without creating it. (PostgreSQL + S3 destinations run the same code through
 * server/storage/backends.ts.)
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadScaffold } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { SERVER_BIN, startServerProcess } from '../helpers/server-process.js';

const keyring = vec('scaffolds', 'keys', 'keyring.toml');

function runMigrate(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [SERVER_BIN, 'migrate', ...args], { encoding: 'utf8', timeout: 120_000 });
}

t.test('migrate sqlite+file into sqlite+file: complete, verified, resumable, idempotent', async (t) => {
  const root = t.testdir();
  const src = join(root, 'src');
  const dst = join(root, 'dst');
  const source = await startServerProcess(t, { directory: src, args: ['--keyring', keyring] });
  const ids: string[] = [];
  for (const name of ['valid_v1', 'lotsa_parcels']) {
    const scaffold = loadScaffold(name);
    const id = `${scaffold.invoice.bindle.name}/${scaffold.invoice.bindle.version}`;
    ids.push(id);
    const res = await fetch(`${source.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: scaffold.invoiceText });
    t.equal(res.status, 202, `${id} created`);
    for (const parcel of scaffold.parcels.values()) {
      const up = await fetch(`${source.url}_i/${id}@${parcel.sha256}`, { method: 'POST', body: parcel.data });
      t.ok(up.status === 200 || up.status === 409, 'uploaded (409: shared with an earlier bindle)');
    }
  }
  const yankedId = ids[0] ?? '';
  t.equal((await fetch(`${source.url}_i/${yankedId}`, { method: 'DELETE' })).status, 200, 'one is yanked');
  const before = new Map<string, string>();
  for (const id of ids) before.set(id, await (await fetch(`${source.url}_i/${id}?yanked=true`)).text());
  t.equal(await source.stop(), 0);
  const parcelCount = readdirSync(join(src, 'parcels')).filter((n) => /^[0-9a-f]{64}\.dat$/.test(n)).length;

  const args = ['--from-index', `sqlite:${join(src, 'index.sqlite')}`, '--from-parcels', `file:${src}`,
    '--to-index', `sqlite:${join(dst, 'index.sqlite')}`, '--to-parcels', `file:${dst}`];
  let run = runMigrate(args);
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, new RegExp(`parcels: ${parcelCount} copied \\(\\d+ bytes\\), 0 already there`));
  t.match(run.stdout, /invoices: 2 copied, 0 yank copied, 0 already there\ntombstones: 0 copied, 0 already there\nOCI blob links: 0 copied, 0 already there\nfailures: 0/);

  run = runMigrate(args);
  t.equal(run.status, 0, 'a second run succeeds');
  t.match(run.stdout, new RegExp(`parcels: 0 copied \\(0 bytes\\), ${parcelCount} already there`), 'and copies nothing');
  t.match(run.stdout, /invoices: 0 copied, 0 yank copied, 2 already there/);

  const lost = readdirSync(join(dst, 'parcels')).find((n) => /^[0-9a-f]{64}\.dat$/.test(n)) ?? '';
  rmSync(join(dst, 'parcels', lost));
  run = runMigrate([...args, '--quiet']);
  t.equal(run.status, 0);
  t.match(run.stdout, new RegExp(`parcels: 1 copied \\(\\d+ bytes\\), ${parcelCount - 1} already there`), 'resumes: only the missing parcel');
  t.notMatch(run.stdout, /copied parcel/, '--quiet prints only the summary');

  // The destination serves the same bytes with the same host key.
  copyFileSync(join(src, 'signing-keys.toml'), join(root, 'host-keys.toml'));
  const dest = await startServerProcess(t, { directory: dst, args: ['--keyring', keyring, '--signing-keys', join(root, 'host-keys.toml')] });
  for (const id of ids) {
    t.equal(await (await fetch(`${dest.url}_i/${id}?yanked=true`)).text(), before.get(id), `${id}: byte-exact invoice`);
  }
  t.equal((await fetch(`${dest.url}_i/${yankedId}`)).status, 403, 'the yank came along');
  const chip = loadScaffold('valid_v1').parcels.get('parcel');
  if (chip === undefined) throw new Error('scaffold parcel missing');
  const res = await fetch(`${dest.url}_i/${yankedId}@${chip.sha256}?yanked=true`);
  t.same(Buffer.from(await res.arrayBuffer()), chip.data, 'parcels are served');
});

t.test('migrate refuses a missing source and bad flags without creating anything', async (t) => {
  const root = t.testdir();
  const absent = join(root, 'absent');
  let run = runMigrate(['--from-index', `sqlite:${join(absent, 'index.sqlite')}`, '--from-parcels', `file:${absent}`,
    '--to-index', `sqlite:${join(root, 'd', 'i.sqlite')}`, '--to-parcels', `file:${join(root, 'd')}`]);
  t.equal(run.status, 2);
  t.match(run.stderr, /index sqlite:.*absent.*index\.sqlite does not exist/);
  t.notOk(existsSync(absent), 'the source is not created');
  run = runMigrate(['--from-index', 'sqlite:a']);
  t.equal(run.status, 2);
  t.match(run.stderr, /required option '--from-parcels <spec>' not specified \(see --help\)/);
  run = runMigrate(['--from-index', 'x', '--from-parcels', 'file:a', '--to-index', 'sqlite:b', '--to-parcels', 'file:b']);
  t.match(run.stderr, /--from-index: "x" is not an index/);
  run = runMigrate(['--help']);
  t.equal(run.status, 0);
  t.match(run.stdout, /--to-parcels <spec>[\s\S]*Safe to run again/);
});
