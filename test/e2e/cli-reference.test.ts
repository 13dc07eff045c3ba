/**
 * The reference CLI's tests (tests/cli.rs), ported and run end to end: the built `bindle` CLI
 * as a child process against the real server process. Push (directory, tarball, `-p`),
 * push-invoice + push-file, get twice (the second from the cache with the server stopped),
 * `get --export`, get-invoice, get-parcel, yank and `--yanked`, search on an empty server,
 * package, keys create/add/fetch and sign-invoice.
 */
import t from 'tap';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import { parseKeyRing, parseSecretKeyFile } from '../../core/codec/key-file-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { Keyring } from '../../core/signing/keyring.js';
import { publicKeyOf } from '../../core/signing/keys.js';
import { verifyInvoice } from '../../core/signing/verification.js';
import { BindleClient } from '../../client/lib/index.js';
import { loadScaffold, sha256 } from '../helpers/bindles.js';
import { cliRunner, exits, trustSetup } from '../helpers/cli-runner.js';
import { vec } from '../helpers/paths.js';
import { startServerProcess } from '../helpers/server-process.js';

// Dozens of real CLI processes and several servers: ~90 s in CI, and a run at low priority
// beside other work took over 300 s. Allow 600 s (this asserts nothing about speed).
t.setTimeout(600_000);

const WARPCORE = 'enterprise.com/warpcore/1.0.0';
const WARPCORE_SHA = canonicalId({ name: 'enterprise.com/warpcore', version: '1.0.0' });
const CHIP_SHA = '23f310b54076878fd4c36f0c60ec92011a8b406349b98dd37d08577d17397de5';
const STANDALONE = vec('data', 'standalone');
const TEST_LABEL = 'Benjamin Sisko <thesisko@bajor.com>';
const EXAMPLE_KEY = 'XbhLeOX4BtvUnT+o7xyi2waw5WXGOl3H/l3b5h97Dk4=';

t.test('canonical id of the reference standalone bindle', async (t) => {
  t.equal(WARPCORE_SHA, sha256(WARPCORE));
  t.equal(WARPCORE_SHA, '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd');
});

t.test('search on an empty server, push a directory, then the same bindle with -p (a no-op)', async (t) => {
  const dir = t.testdir();
  const trust = trustSetup(dir);
  const server = await startServerProcess(t, { args: trust.serverArgs });
  const bindle = cliRunner(join(dir, 'home'));
  const env = { BINDLE_URL: server.url };

  const search = await bindle(['search'], { env });
  exits(t, search, 0, 'search');
  t.match(search.stdout.trimEnd(), /No matching bindles were found$/, 'says nothing matched');

  const push = await bindle(['push', join(STANDALONE, WARPCORE_SHA)], { env });
  exits(t, push, 0, 'push');
  t.match(push.stdout, /Pushed bindle enterprise\.com\/warpcore\/1\.0\.0 .*invoice created, 1 parcel\(s\) uploaded/);

  const again = await bindle(['push', '-p', STANDALONE, WARPCORE], { env });
  exits(t, again, 0, 'again');
  t.match(again.stdout, /nothing to do \(no-op\)/, 'the identical re-push is a no-op');

  const found = await bindle(['search', '-q', 'warpcore', '--output', 'json'], { env });
  exits(t, found, 0, 'found');
  const reply = JSON.parse(found.stdout) as { total: number; invoices: Array<{ bindle: { name: string } }> };
  t.equal(reply.total, 1);
  t.equal(reply.invoices[0]?.bindle.name, 'enterprise.com/warpcore');
});

t.test('push a tarball', async (t) => {
  const dir = t.testdir();
  const trust = trustSetup(dir);
  const server = await startServerProcess(t, { args: trust.serverArgs });
  const bindle = cliRunner(join(dir, 'home'));
  const push = await bindle(['push', join(STANDALONE, `${WARPCORE_SHA}.tar.gz`)], { env: { BINDLE_URL: server.url } });
  exits(t, push, 0, 'push');
  t.match(push.stdout, /invoice created, 1 parcel\(s\) uploaded/);
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  t.ok(await client.parcelExists(WARPCORE, CHIP_SHA), 'the parcel is on the server');
});

t.test('push-invoice then push-file', async (t) => {
  const dir = t.testdir();
  const trust = trustSetup(dir);
  const server = await startServerProcess(t, { args: trust.serverArgs });
  const bindle = cliRunner(join(dir, 'home'));
  const env = { BINDLE_URL: server.url };
  const base = vec('scaffolds', 'valid_v1');

  const inv = await bindle(['push-invoice', join(base, 'invoice.toml')], { env });
  exits(t, inv, 0, 'inv');
  t.match(inv.stdout, /Invoice enterprise\.com\/warpcore\/1\.0\.0 created/);
  t.match(inv.stdout, new RegExp(`1 parcel\\(s\\) still to upload[\\s\\S]*${CHIP_SHA}`), 'lists the missing parcel');

  const file = await bindle(['push-file', WARPCORE, join(base, 'parcels', 'parcel.dat')], { env });
  exits(t, file, 0, 'file');
  t.match(file.stdout, /File successfully uploaded/);

  const again = await bindle(['push-file', WARPCORE, join(base, 'parcels', 'parcel.dat')], { env });
  exits(t, again, 0, 'again');
  t.match(again.stdout, /already on the server/);

  const dup = await bindle(['push-invoice', join(base, 'invoice.toml')], { env });
  exits(t, dup, 1, 'dup');
  t.match(dup.stderr, /^bindle: could not push invoice enterprise\.com\/warpcore\/1\.0\.0: .+\n$/, 'one-line error');
});

t.test('get, get-invoice, get-parcel, info, yank, keys fetch; then get from the cache with the server stopped', async (t) => {
  const dir = t.testdir();
  const trust = trustSetup(dir);
  const server = await startServerProcess(t, { args: trust.serverArgs });
  const seed = new BindleClient({ baseUrl: server.url });
  t.teardown(() => seed.close());
  for (const name of ['valid_v1', 'lotsa_parcels']) {
    const scaffold = loadScaffold(name);
    await seed.createInvoice(scaffold.invoice);
    for (const parcel of scaffold.parcels.values()) {
      const label = scaffold.invoice.parcel?.find((p) => p.label.sha256 === parcel.sha256)?.label;
      if (label !== undefined) await seed.createParcel(`${scaffold.invoice.bindle.name}/${scaffold.invoice.bindle.version}`, label, parcel.data);
    }
  }
  const home = join(dir, 'home');
  const bindle = cliRunner(home);
  const cache = join(dir, 'cache');
  const global = ['-d', cache];
  const env = { BINDLE_URL: server.url, BINDLE_KEYRING: trust.clientKeyringPath };

  const get = await bindle([...global, 'get', WARPCORE], { env });
  exits(t, get, 0, 'get');
  t.match(get.stdout, new RegExp(`Fetched parcel ${CHIP_SHA}`));
  t.equal(readFileSync(join(cache, WARPCORE_SHA, 'parcels', `${CHIP_SHA}.dat`), 'utf8'), 'a red one', 'the parcel is cached');

  const out = join(dir, 'out');
  const gi = await bindle([...global, 'get-invoice', '-o', join(out, 'invoice.toml'), WARPCORE], { env });
  exits(t, gi, 0, 'gi');
  t.equal(parseInvoice(readFileSync(join(out, 'invoice.toml'), 'utf8')).bindle.name, 'enterprise.com/warpcore');
  const giAgain = await bindle([...global, 'get-invoice', '-o', join(out, 'invoice.toml'), WARPCORE], { env });
  exits(t, giAgain, 1, 'an existing output file is never overwritten');
  t.match(giAgain.stderr, /already exists/);

  // get-parcel from the server (a fresh cache dir), as in the reference test
  const gp = await bindle(['-d', join(dir, 'cache2'), 'get-parcel', '-o', join(out, 'parcel.dat'), WARPCORE, CHIP_SHA], { env });
  exits(t, gp, 0, 'gp');
  t.equal(readFileSync(join(out, 'parcel.dat'), 'utf8'), 'a red one');

  const info = await bindle([...global, 'info', 'enterprise.com/cargobay/1.0.0', '--output', 'json'], { env });
  exits(t, info, 0, 'info');
  t.equal((JSON.parse(info.stdout) as { parcel: unknown[] }).parcel.length, 3);

  const yank = await bindle(['yank', 'enterprise.com/cargobay/1.0.0'], { env });
  exits(t, yank, 0, 'yank');
  t.match(yank.stdout, /Bindle enterprise\.com\/cargobay\/1\.0\.0 yanked/);
  const yanked = await bindle(['-d', join(dir, 'cache3'), 'info', 'enterprise.com/cargobay/1.0.0'], { env });
  exits(t, yanked, 1, 'a yanked bindle is refused without --yanked');
  t.match(yanked.stderr, /yanked.*--yanked/);
  const allowed = await bindle(['-d', join(dir, 'cache3'), 'info', '--yanked', 'enterprise.com/cargobay/1.0.0'], { env });
  exits(t, allowed, 0, 'allowed');
  t.match(allowed.stdout, /yanked = true/);

  const fetchedRing = join(dir, 'fetched-keyring.toml');
  const fetch = await bindle(['keys', 'fetch'], { env: { ...env, BINDLE_KEYRING: fetchedRing } });
  exits(t, fetch, 0, 'fetch');
  const ring = parseKeyRing(readFileSync(fetchedRing, 'utf8'));
  t.same(ring.key?.map((k) => k.key), [publicKeyOf(trust.hostKey)], 'the host key is in the keyring');
  const fetchAgain = await bindle(['keys', 'fetch'], { env: { ...env, BINDLE_KEYRING: fetchedRing } });
  t.match(fetchAgain.stdout, /Wrote 0 keys/, 'keys already present are not added twice');

  const specificRing = join(dir, 'specific-keyring.toml');
  const specific = await bindle(['keys', 'fetch', '--key-server', `${server.url}bindle-keys`], {
    env: { BINDLE_URL: 'http://not-real.invalid/v1/', BINDLE_KEYRING: specificRing },
  });
  exits(t, specific, 0, 'specific');
  t.equal(parseKeyRing(readFileSync(specificRing, 'utf8')).key?.length, 1);

  t.equal(await server.stop(), 0, 'server stopped');

  const cached = await bindle([...global, 'get', WARPCORE], { env });
  exits(t, cached, 0, 'cached');
  t.match(cached.stdout, /already in the cache/, 'the second get is served from the cache');

  const exportDir = join(dir, 'export');
  const exported = await bindle([...global, 'get', '-e', exportDir, WARPCORE], { env });
  exits(t, exported, 0, 'exported');
  t.ok(statSync(join(exportDir, `${WARPCORE_SHA}.tar.gz`)).isFile(), 'exported <sha256(name/version)>.tar.gz');

  const offline = await bindle([...global, '--retries', '0', 'get', 'enterprise.com/bridge/1.0.0'], { env });
  exits(t, offline, 1, 'an uncached bindle needs the (stopped) server');
  t.match(offline.stderr, /^bindle: could not get enterprise\.com\/bridge\/1\.0\.0: .*cannot reach/);

  const clean = await bindle([...global, 'clean']);
  exits(t, clean, 0, 'clean');
  t.notOk(existsSync(join(cache, WARPCORE_SHA)), 'the cached bindle is gone');
});

t.test('package a standalone directory', async (t) => {
  const dir = t.testdir();
  const bindle = cliRunner(join(dir, 'home'));
  const out = join(dir, 'out');
  const r = await bindle(['package', '-p', STANDALONE, '-e', out, WARPCORE], { env: { BINDLE_URL: 'https://127.0.0.1:8080/v1/' } });
  exits(t, r, 0, 'r');
  t.ok(statSync(join(out, `${WARPCORE_SHA}.tar.gz`)).isFile(), 'wrote <sha>.tar.gz');
});

t.test('keys create: secret file (0600) and keyring, a second key, then --skip-keyring', async (t) => {
  const dir = t.testdir();
  const bindle = cliRunner(join(dir, 'home'));
  const secrets = join(dir, 'secret_keys.toml');
  const keyring = join(dir, 'keyring.toml');
  const create = (label: string, skip: boolean): ReturnType<typeof bindle> =>
    bindle(['keys', 'create', '--secrets-file', secrets, '--roles', 'creator,approver', ...(skip ? ['--skip-keyring'] : []), label], {
      env: { BINDLE_KEYRING: keyring },
    });

  const first = await create(TEST_LABEL, false);
  exits(t, first, 0, 'first');
  t.equal(statSync(secrets).mode & 0o777, 0o600, 'the secret key file is private');
  t.ok(readFileSync(secrets, 'utf8').includes(TEST_LABEL));
  let ring = parseKeyRing(readFileSync(keyring, 'utf8'));
  t.same(ring.key?.map((k) => k.label), [TEST_LABEL]);
  const secret = parseSecretKeyFile(readFileSync(secrets, 'utf8')).key?.[0];
  t.same(secret?.roles, ['creator', 'approver']);
  t.equal(ring.key?.[0]?.key, secret === undefined ? undefined : publicKeyOf(secret), 'the keyring holds the public half');

  const second = await create('Kira Nerys <kira@bajor.mil>', false);
  exits(t, second, 0, 'second');
  ring = parseKeyRing(readFileSync(keyring, 'utf8'));
  t.same(ring.key?.map((k) => k.label), [TEST_LABEL, 'Kira Nerys <kira@bajor.mil>']);

  const third = await create('Jadzia Dax <dax@trill.com>', true);
  exits(t, third, 0, 'third');
  t.ok(readFileSync(secrets, 'utf8').includes('Jadzia Dax <dax@trill.com>'));
  ring = parseKeyRing(readFileSync(keyring, 'utf8'));
  t.equal(ring.key?.length, 2, 'the skipped key is not on the keyring');

  const printed = await bindle(['keys', 'print', '-f', secrets, '-m', 'kira']);
  exits(t, printed, 0, 'printed');
  t.same(parseKeyRing(printed.stdout).key?.map((k) => k.label), ['Kira Nerys <kira@bajor.mil>']);
});

t.test('keys create with the defaults writes under XDG_DATA_HOME and XDG_CONFIG_HOME', async (t) => {
  const dir = t.testdir();
  const home = join(dir, 'home');
  const bindle = cliRunner(home);
  const r = await bindle(['keys', 'create', TEST_LABEL]);
  exits(t, r, 0, 'r');
  t.ok(existsSync(join(home, '.local', 'share', 'bindle', 'secret_keys.toml')), 'secret keys in $XDG_DATA_HOME/bindle');
  t.ok(existsSync(join(home, '.config', 'bindle', 'keyring.toml')), 'keyring in $XDG_CONFIG_HOME/bindle');
});

t.test('keys add: to a new keyring, and to an existing one', async (t) => {
  const dir = t.testdir();
  const bindle = cliRunner(join(dir, 'home'));
  const keyring = join(dir, 'keyring.toml');
  const add = await bindle(['keys', 'add', TEST_LABEL, 'approver', EXAMPLE_KEY], { env: { BINDLE_KEYRING: keyring } });
  exits(t, add, 0, 'add');
  let ring = parseKeyRing(readFileSync(keyring, 'utf8'));
  t.same(ring.key, [{ label: TEST_LABEL, roles: ['approver'], key: EXAMPLE_KEY }]);

  const second = "Miles O'Brien <everyman@ufp.com>";
  const created = await bindle(['keys', 'create', '-f', join(dir, 's.toml'), 'Another'], { env: { BINDLE_KEYRING: keyring } });
  exits(t, created, 0, 'created');
  const addMore = await bindle(['keys', 'add', second, 'approver', EXAMPLE_KEY], { env: { BINDLE_KEYRING: keyring } });
  exits(t, addMore, 0, 'addMore');
  t.match(addMore.stdout, /already holds this key/, 'the same key is not added twice');
  ring = parseKeyRing(readFileSync(keyring, 'utf8'));
  t.equal(ring.key?.length, 2);

  const bad = await bindle(['keys', 'add', second, 'approver', 'not-a-key'], { env: { BINDLE_KEYRING: keyring } });
  exits(t, bad, 1, 'a malformed key is refused');
  t.match(bad.stderr, /^bindle: could not add key .*\n$/);
  const badRole = await bindle(['keys', 'add', second, 'admiral', EXAMPLE_KEY], { env: { BINDLE_KEYRING: keyring } });
  exits(t, badRole, 2, 'an unknown role is a usage error');
});

t.test('keys create, then sign-invoice with the new key', async (t) => {
  const dir = t.testdir();
  const bindle = cliRunner(join(dir, 'home'));
  const keyfile = join(dir, 'testkey.toml');
  const create = await bindle(['keys', 'create', 'testkey', '-f', keyfile, '--skip-keyring']);
  exits(t, create, 0, 'create');
  t.ok(statSync(keyfile).isFile());

  const signedPath = join(dir, 'signed-invoice.toml');
  const sign = await bindle(['sign-invoice', vec('data', 'simple-invoice.toml'), '-o', signedPath, '-f', keyfile]);
  exits(t, sign, 0, 'sign');
  const signed = parseInvoice(readFileSync(signedPath, 'utf8'));
  t.equal(signed.signature?.length, 1);
  t.equal(signed.signature?.[0]?.role, 'creator');
  t.equal(signed.signature?.[0]?.by, 'testkey');
  const key = parseSecretKeyFile(readFileSync(keyfile, 'utf8')).key?.[0];
  if (key === undefined) throw new Error('no key created');
  const trusting = new Keyring({ version: '1.0', key: [{ label: 'testkey', roles: ['creator'], key: publicKeyOf(key) }] });
  t.doesNotThrow(() => verifyInvoice(signed, trusting, { kind: 'CreativeIntegrity' }), 'the signature verifies');

  const again = await bindle(['sign-invoice', signedPath, '-o', signedPath, '-f', keyfile]);
  exits(t, again, 1, 'a key never signs the same invoice twice');
  t.match(again.stderr, /already signed/);

  const wrongRole = await bindle(['sign-invoice', vec('data', 'simple-invoice.toml'), '-r', 'approver', '-o', join(dir, 'x.toml'), '-f', keyfile]);
  exits(t, wrongRole, 1, 'no key with the approver role');
  t.match(wrongRole.stderr, /no key with role approver/);
});
