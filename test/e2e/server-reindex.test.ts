/**
 * The reference layout as import/export: invoices/<id>/invoice.toml and parcels/<sha>/parcel.dat
 * as the reference file provider writes them are imported by `bindle-server reindex` (never
 * implicitly at start-up; ids already indexed are compared, not skipped), then served; and
 * `bindle-server export --reference-layout DIR` writes a directory that imports again.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { createSecretKey } from '../../core/signing/keys.js';
import { yankInvoice } from '../../core/signing/sign.js';
import { loadScaffold, signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { SERVER_BIN, startServerProcess } from '../helpers/server-process.js';

const keyring = vec('scaffolds', 'keys', 'keyring.toml');

function serverCommand(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [SERVER_BIN, ...args, '--keyring', keyring], { encoding: 'utf8' });
}

async function total(url: string, yanked = false): Promise<number> {
  const res = await fetch(`${url}_q${yanked ? '?yanked=true' : ''}`, { headers: { accept: 'application/json' } });
  return ((await res.json()) as { total: number }).total;
}

t.test('reindex a reference data directory, repair it, serve it, export it and import the export', async (t) => {
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
  t.equal(await total(server.url), 0, 'start-up does not index the files');
  await server.stop();

  const run = serverCommand(['reindex', '--directory', dir]);
  t.equal(run.status, 1, 'exit 1: one file was skipped');
  t.match(run.stdout, /3 added, 0 already indexed, 0 yanked, 0 conflicting, 1 skipped/);
  t.match(run.stdout, /not-a-canonical-id/);
  const again = serverCommand(['reindex', '--directory', dir]);
  t.match(again.stdout, /0 added, 3 already indexed, 0 yanked, 0 conflicting/, 'reindex is idempotent');

  // Files that disagree with the index: a yank the index missed is taken, anything else reported.
  const warpcore = loadScaffold('valid_v1').invoice;
  const warpcoreFile = join(dir, 'invoices', canonicalId(warpcore.bindle), 'invoice.toml');
  const yankedText = renderInvoice(yankInvoice(parseInvoice(readFileSync(warpcoreFile, 'utf8')), createSecretKey('Old host', ['host'])), 'toml');
  writeFileSync(warpcoreFile, yankedText);
  const cargobay = loadScaffold('valid_v2').invoice;
  const cargobayFile = join(dir, 'invoices', canonicalId(cargobay.bindle), 'invoice.toml');
  const original = readFileSync(cargobayFile, 'utf8');
  writeFileSync(cargobayFile, renderInvoice({ ...parseInvoice(original), annotations: { edited: 'by hand' } }, 'toml'));
  const repair = serverCommand(['reindex', '--directory', dir]);
  t.equal(repair.status, 1, 'exit 1: a conflict');
  t.match(repair.stdout, /0 added, 1 already indexed, 1 yanked, 1 conflicting, 1 skipped/);
  t.match(repair.stdout, new RegExp(`conflict .*${canonicalId(cargobay.bindle)}.*kept the index's`));
  writeFileSync(cargobayFile, original);

  server = await startServerProcess(t, { directory: dir, args: ['--keyring', keyring] });
  t.equal(await total(server.url), 2, 'the yanked one is hidden');
  t.equal(await total(server.url, true), 3);
  let res = await fetch(`${server.url}_i/${ids[0] ?? ''}`);
  t.equal(res.status, 403, 'the yank from the file is served');
  res = await fetch(`${server.url}_i/${ids[0] ?? ''}?yanked=true`);
  t.equal(await res.text(), yankedText, 'with its yank signature');
  res = await fetch(`${server.url}_i/${ids[1] ?? ''}`);
  t.equal(await res.text(), original, 'the conflicting file changed nothing');
  t.equal((await fetch(`${server.url}_i/${ids[2] ?? ''}`)).status, 200);
  const chip = loadScaffold('lotsa_parcels').parcels.values().next().value;
  if (chip === undefined) throw new Error('scaffold parcel missing');
  res = await fetch(`${server.url}_i/${ids[2] ?? ''}@${chip.sha256}`);
  t.same(Buffer.from(await res.arrayBuffer()), chip.data, 'reference parcel files are served');
  res = await fetch(`${server.url}_r/missing/enterprise.com/cargobay/1.0.0`, { headers: { accept: 'application/json' } });
  t.same(((await res.json()) as { missing: unknown[] }).missing, [], 'nothing missing');

  // An invoice created through the API exists only in the index...
  const created = signedInvoice('example.com/made-here', '1.0.0', [{ name: 'x', data: Buffer.from('made here') }]);
  res = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(created, 'toml') });
  t.equal(res.status, 202);
  const madeHere = await fetch(`${server.url}_i/example.com/made-here/1.0.0`).then((r) => r.text());
  t.notOk(existsSync(join(dir, 'invoices', canonicalId(created.bindle))), 'no invoice file is written');
  await server.stop();

  // ...and export writes all of them, yanked included, with their parcels.
  const out = join(dir, 'exported');
  const exported = serverCommand(['export', '--reference-layout', out, '--directory', dir]);
  t.equal(exported.status, 0, exported.stderr);
  t.match(exported.stdout, /4 invoices, \d+ parcels, 1 parcels never uploaded/);
  t.equal(readFileSync(join(out, 'invoices', canonicalId(created.bindle), 'invoice.toml'), 'utf8'), madeHere);
  t.equal(readFileSync(join(out, 'invoices', canonicalId(warpcore.bindle), 'invoice.toml'), 'utf8'), yankedText);
  t.same(readFileSync(join(out, 'parcels', chip.sha256, 'parcel.dat')), chip.data);
  t.match(readFileSync(join(out, 'parcels', chip.sha256, 'label.toml'), 'utf8'), chip.sha256);
  t.match(serverCommand(['export', '--reference-layout', out, '--directory', dir]).stdout, /4 invoices/, 'export runs again');

  const imported = serverCommand(['reindex', '--directory', out]);
  t.match(imported.stdout, /4 added, 0 already indexed, 0 yanked, 0 conflicting, 0 skipped/, imported.stdout);
  server = await startServerProcess(t, { directory: out, args: ['--keyring', keyring] });
  t.equal(await total(server.url, true), 4, 'the export imports completely');
  t.equal((await fetch(`${server.url}_i/${ids[0] ?? ''}`)).status, 403, 'yanked stays yanked');
  t.equal(await fetch(`${server.url}_i/example.com/made-here/1.0.0`).then((r) => r.text()), madeHere);
  res = await fetch(`${server.url}_i/${ids[2] ?? ''}@${chip.sha256}`);
  t.same(Buffer.from(await res.arrayBuffer()), chip.data, 'exported parcels are served');
});

t.test('subcommands have their own help; export needs its directory', async (t) => {
  const reindexHelp = serverCommand(['reindex', '--help']);
  t.equal(reindexHelp.status, 0);
  t.match(reindexHelp.stdout, /^Usage: bindle-server reindex/);
  t.notMatch(reindexHelp.stdout, /--max-parcel-size/, 'not the main help');
  const exportHelp = serverCommand(['export', '--help']);
  t.match(exportHelp.stdout, /^Usage: bindle-server export --reference-layout <dir>/);
  const mainHelp = serverCommand(['--help']);
  t.match(mainHelp.stdout, /--max-parcel-size/);
  t.match(mainHelp.stdout, /bindle-server export --reference-layout <dir>/, 'the main help lists the subcommands');
  const noDir = serverCommand(['export', '--directory', t.testdir()]);
  t.equal(noDir.status, 2);
  t.match(noDir.stderr, /export needs --reference-layout/);
});

t.test('reindex and export refuse a data directory that does not exist, and create nothing', async (t) => {
  const missing = join(t.testdir(), 'missing');
  const reindexed = serverCommand(['reindex', '--directory', missing]);
  t.equal(reindexed.status, 2, reindexed.stdout);
  t.match(reindexed.stderr, /^bindle-server: --directory: data directory \S*missing does not exist; reindex imports the invoice files of an existing one\n$/);
  t.notOk(existsSync(missing), 'no directory, index or host key');
  const out = join(t.testdirName, 'out');
  const exported = serverCommand(['export', '--reference-layout', out, '--directory', missing]);
  t.equal(exported.status, 2, exported.stdout);
  t.match(exported.stderr, /^bindle-server: index sqlite:\S*missing\/index\.sqlite does not exist\n$/);
  t.notOk(existsSync(missing), 'no directory, index or host key');
  t.notOk(existsSync(out), 'nothing exported');
});
