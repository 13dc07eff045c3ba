/**
 * Serving a reference data directory: invoices/<id>/invoice.toml and parcels/<sha>/parcel.dat
 * as the reference file provider writes them are indexed by `bindle-server reindex` (never
 * implicitly at start-up) and then served.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { loadScaffold } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { SERVER_BIN, startServerProcess } from '../helpers/server-process.js';

const keyring = vec('scaffolds', 'keys', 'keyring.toml');

t.test('reindex a reference data directory, then serve it', async (t) => {
  const dir = t.testdir();
  const ids: string[] = [];
  for (const name of ['valid_v1', 'valid_v2', 'lotsa_parcels']) {
    const scaffold = loadScaffold(name);
    const id = canonicalId(scaffold.invoice.bindle);
    ids.push(`${scaffold.invoice.bindle.name}/${scaffold.invoice.bindle.version}`);
    mkdirSync(join(dir, 'invoices', id), { recursive: true });
    copyFileSync(vec('scaffolds', name, 'invoice.toml'), join(dir, 'invoices', id, 'invoice.toml'));
    for (const parcel of scaffold.parcels.values()) {
      mkdirSync(join(dir, 'parcels', parcel.sha256), { recursive: true });
      writeFileSync(join(dir, 'parcels', parcel.sha256, 'parcel.dat'), parcel.data);
      // the reference also keeps each parcel's label beside it
      writeFileSync(join(dir, 'parcels', parcel.sha256, 'label.toml'), `sha256 = "${parcel.sha256}"\n`);
    }
  }
  mkdirSync(join(dir, 'invoices', 'not-a-canonical-id'), { recursive: true });
  writeFileSync(join(dir, 'invoices', 'not-a-canonical-id', 'invoice.toml'), 'broken = ');

  let server = await startServerProcess(t, { directory: dir, args: ['--keyring', keyring] });
  let res = await fetch(`${server.url}_q`, { headers: { accept: 'application/json' } });
  t.equal(((await res.json()) as { total: number }).total, 0, 'start-up does not index the files');
  await server.stop();

  const run = spawnSync(process.execPath, [SERVER_BIN, 'reindex', '--directory', dir, '--keyring', keyring], { encoding: 'utf8' });
  t.equal(run.status, 1, 'exit 1: one file was skipped');
  t.match(run.stdout, /3 added, 0 already indexed, 1 skipped/);
  t.match(run.stdout, /not-a-canonical-id/);
  const again = spawnSync(process.execPath, [SERVER_BIN, 'reindex', '--directory', dir, '--keyring', keyring], { encoding: 'utf8' });
  t.match(again.stdout, /0 added, 3 already indexed/, 'reindex is idempotent');

  server = await startServerProcess(t, { directory: dir, args: ['--keyring', keyring] });
  res = await fetch(`${server.url}_q`, { headers: { accept: 'application/json' } });
  t.equal(((await res.json()) as { total: number }).total, 3);
  for (const id of ids) {
    res = await fetch(`${server.url}_i/${id}`);
    t.equal(res.status, 200, id);
  }
  const chip = loadScaffold('valid_v1').parcels.get('parcel');
  if (chip === undefined) throw new Error('scaffold parcel missing');
  res = await fetch(`${server.url}_i/enterprise.com/warpcore/1.0.0@${chip.sha256}`);
  t.same(Buffer.from(await res.arrayBuffer()), chip.data, 'reference parcel files are served');
  res = await fetch(`${server.url}_r/missing/enterprise.com/cargobay/1.0.0`, { headers: { accept: 'application/json' } });
  t.same(((await res.json()) as { missing: unknown[] }).missing, [], 'nothing missing');
});
