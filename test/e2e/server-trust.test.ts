/**
 * Shared identity and trust on the real `bindle-server` process: a publisher key added to the
 * keyring file is honoured without a restart (file replaced → noticed; SIGHUP → re-read), a
 * broken keyring file is ignored with a log line, replicas given one host key file serve the same
 * `/bindle-keys`, and with a shared index a missing host key file stops start-up with advice.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import type { SecretKeyEntry } from '../../schema/index.js';
import { signedInvoice } from '../helpers/bindles.js';
import { SERVER_BIN, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ringText = (...keys: SecretKeyEntry[]): string => renderKeyRing({ version: '1.0', key: keys.map((k) => publicKeyEntry(k)) });
/** The `[[key]]` table of one key, to append to a keyring file. */
const keyTable = (key: SecretKeyEntry): string => ringText(key).replace(/^version = .*\n/m, '');

async function push(server: ServerProcess, key: SecretKeyEntry, version: string): Promise<Response> {
  const body = renderInvoice(signedInvoice('example.com/trust', version, [], { key }), 'toml');
  return fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body });
}

/** Polls `check` every 100 ms (at most 60 s: a bound for a loaded machine, not a speed target). */
async function eventually(check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 600; i += 1) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

t.test('a key added to the keyring file is trusted without a restart; a broken file is ignored', async (t) => {
  const dir = t.testdir();
  const keyring = join(dir, 'keyring.toml');
  const alice = createSecretKey('Alice <alice@example.com>', ['creator']);
  const bob = createSecretKey('Bob <bob@example.com>', ['creator']);
  writeFileSync(keyring, ringText(alice));
  const server = await startServerProcess(t, { args: ['--keyring', keyring] });
  t.match(server.output(), /"keyringWatched":true/);

  t.equal((await push(server, alice, '0.1.0')).status, 201, 'a trusted key pushes');
  const refused = await push(server, bob, '1.0.0');
  t.equal(refused.status, 400, 'an unknown key is refused');

  appendFileSync(keyring, keyTable(bob));
  let status = 0;
  t.ok(await eventually(async () => (status = (await push(server, bob, '1.0.0')).status) !== 400), 'after appending, the push is accepted');
  t.equal(status, 201, 'and creates the invoice');
  // Log lines reach stdout in batches, up to a few ms after the reply the reload made possible.
  t.ok(await eventually(async () => /"trustedKeys":2.*reloaded the trusted keyring/.test(server.output())), 'the reload is logged');

  writeFileSync(`${keyring}.new`, 'version = "1.0"\n[[key]]\nlabel = ');
  renameSync(`${keyring}.new`, keyring);
  t.ok(await eventually(async () => /keyring reload failed: keeping the keys loaded before/.test(server.output())), 'the broken file is logged');
  t.match(server.output(), /"level":50[^\n]*invalid_key_file|"level":50[^\n]*keyring/, 'as an error');
  t.equal((await push(server, bob, '2.0.0')).status, 201, 'the keys loaded before still work');
});

t.test('SIGHUP re-reads a keyring the watcher cannot see change', async (t) => {
  const dir = t.testdir();
  // The keyring is a link into another directory (as mounted secrets often are): writes to its
  // target raise no event where the server watches, so only SIGHUP picks them up.
  mkdirSync(join(dir, 'real'));
  const target = join(dir, 'real', 'trusted.toml');
  const keyring = join(dir, 'keyring.toml');
  const carol = createSecretKey('Carol <carol@example.com>', ['creator']);
  writeFileSync(target, 'version = "1.0"\n');
  symlinkSync(target, keyring);
  const server = await startServerProcess(t, { args: ['--keyring', keyring] });
  t.equal((await push(server, carol, '1.0.0')).status, 400, 'not trusted yet');
  appendFileSync(target, keyTable(carol));
  server.child.kill('SIGHUP');
  t.ok(await eventually(async () => /"trustedKeys":1[^\n]*reloaded the trusted keyring/.test(server.output())), 'SIGHUP reloads');
  t.equal((await push(server, carol, '1.0.0')).status, 201, 'then the push succeeds');
  t.equal(server.child.exitCode, null, 'SIGHUP does not stop the server');
});

t.test('replicas given one host key file serve the same /bindle-keys; a shared index needs that file', async (t) => {
  const dir = t.testdir();
  const hostKeys = join(dir, 'host-keys.toml');
  const created = spawnSync(process.execPath, [SERVER_BIN, 'keys', 'create-host', '--out', hostKeys, '--label', 'shared host'], { encoding: 'utf8' });
  t.equal(created.status, 0, created.stderr);
  t.match(created.stdout, /wrote .*host-keys\.toml: host key [A-Za-z0-9+/]+=*/);
  const again = spawnSync(process.execPath, [SERVER_BIN, 'keys', 'create-host', '--out', hostKeys], { encoding: 'utf8' });
  t.equal(again.status, 2, 'an existing key file is never replaced');
  t.match(again.stderr, /already exists; pass --rotate/);
  const bare = spawnSync(process.execPath, [SERVER_BIN, 'keys'], { encoding: 'utf8' });
  t.equal(bare.status, 2);
  t.match(bare.stderr, /missing keys command; the only one is create-host/);

  const a = await startServerProcess(t, { args: ['--signing-keys', hostKeys] });
  const b = await startServerProcess(t, { args: ['--signing-keys', hostKeys] });
  const keysA = await (await fetch(`${a.url}bindle-keys`)).text();
  t.match(keysA, /label = "shared host"/);
  t.equal(await (await fetch(`${b.url}bindle-keys`)).text(), keysA, 'identical /bindle-keys');

  const rotated = spawnSync(process.execPath, [SERVER_BIN, 'keys', 'create-host', '--out', hostKeys, '--rotate', '--label', 'host 2026'], { encoding: 'utf8' });
  t.equal(rotated.status, 0, rotated.stderr);
  t.match(rotated.stdout, /signs from now on; 1 older key\(s\) kept/);
  const c = await startServerProcess(t, { args: ['--signing-keys', hostKeys] });
  const keysC = await (await fetch(`${c.url}bindle-keys`)).text();
  t.match(keysC, /label = "host 2026"[\s\S]*label = "shared host"/, 'after rotation both keys are published, the new one first');

  const missing = join(dir, 'absent.toml');
  const shared = spawnSync(
    process.execPath,
    [SERVER_BIN, '--directory', join(dir, 'data'), '--index', 'postgres://bindle@127.0.0.1:1/bindle', '--signing-keys', missing],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.equal(shared.status, 2, 'a shared index without its host key file does not start');
  t.match(shared.stderr, new RegExp(`host signing key file ${missing} does not exist.*bindle-server keys create-host --out ${missing}`));
});
