/**
 * The real `bindle-server` process: start on a free port, drive it over HTTP, stop it with
 * SIGTERM, restart it on the same directory and find everything intact.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { loadScaffold } from '../helpers/bindles.js';
import { ref } from '../helpers/paths.js';
import { SERVER_BIN, startServerProcess } from '../helpers/server-process.js';

const keyring = ref('scaffolds', 'keys', 'keyring.toml');

t.test('serve, stop, restart on the same directory', async (t) => {
  const first = await startServerProcess(t, { args: ['--keyring', keyring] });
  t.match(first.output(), /UNAUTHENTICATED, on a loopback address only/, 'says it is unauthenticated on loopback');

  let res = await fetch(`${first.origin}/healthz`);
  t.equal(res.status, 200);
  t.match(await res.json(), { status: 'OK' });

  const v1 = loadScaffold('valid_v1');
  res = await fetch(`${first.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: v1.invoiceText });
  t.equal(res.status, 202, await res.clone().text());
  for (const parcel of v1.parcels.values()) {
    res = await fetch(`${first.url}_i/enterprise.com/warpcore/1.0.0@${parcel.sha256}`, { method: 'POST', body: parcel.data });
    t.equal(res.status, 200);
  }
  const invoiceBefore = await (await fetch(`${first.url}_i/enterprise.com/warpcore/1.0.0`)).text();
  const keysBefore = await (await fetch(`${first.url}bindle-keys`)).text();
  t.equal(statSync(join(first.directory, 'signing-keys.toml')).mode & 0o777, 0o600, 'host key file is 0600');
  t.equal(await first.stop(), 0, 'SIGTERM stops the server cleanly');

  const second = await startServerProcess(t, { directory: first.directory, args: ['--keyring', keyring] });
  t.equal(await (await fetch(`${second.url}_i/enterprise.com/warpcore/1.0.0`)).text(), invoiceBefore, 'invoice intact');
  t.equal(await (await fetch(`${second.url}bindle-keys`)).text(), keysBefore, 'same host key');
  const parcel = v1.parcels.get('parcel');
  if (parcel === undefined) throw new Error('scaffold parcel missing');
  res = await fetch(`${second.url}_i/enterprise.com/warpcore/1.0.0@${parcel.sha256}`);
  t.equal(res.status, 200);
  t.same(Buffer.from(await res.arrayBuffer()), parcel.data, 'parcel intact');
  res = await fetch(`${second.url}_q?q=warpcore`, { headers: { accept: 'application/json' } });
  t.equal(((await res.json()) as { total: number }).total, 1, 'index intact');
  res = await fetch(`${second.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(v1.invoice) });
  t.equal(res.status, 409, 'still a duplicate after restart');
});

t.test('command line', async (t) => {
  const help = spawnSync(process.execPath, [SERVER_BIN, '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /--address/);
  t.match(help.stdout, /--unauthenticated/);
  const bad = spawnSync(process.execPath, [SERVER_BIN, '--no-such-flag'], { encoding: 'utf8' });
  t.not(bad.status, 0);
  t.match(bad.stderr, /^bindle-server: .*no-such-flag/m);
  const open = spawnSync(process.execPath, [SERVER_BIN, '--address', '0.0.0.0:0', '--directory', join(t.testdirName, 'd')], { encoding: 'utf8' });
  t.not(open.status, 0, 'refuses to serve unauthenticated on a public address');
  t.match(open.stderr, /--unauthenticated/);
});
