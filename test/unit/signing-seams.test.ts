/**
 * The signing and trust seams: a Signer signs exactly what signInvoice/yankInvoice sign, the
 * FileTrustStore reloads a keyring file (on demand and when it is replaced) and keeps the old
 * keys when the new file is bad, the TrustStoreVerifier follows it, and the host identity is
 * loaded, created only when allowed, and rotated by adding a key in front.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { FileTrustStore, type TrustReload } from '../../core/signing/file-trust-store.js';
import { Keyring } from '../../core/signing/keyring.js';
import { createSecretKey, publicKeyEntry, publicKeyOf } from '../../core/signing/keys.js';
import { SecretKeyStore } from '../../core/signing/secret-key-store.js';
import { signInvoice, yankInvoice } from '../../core/signing/sign.js';
import { LocalSigner, signInvoiceWith, yankInvoiceWith } from '../../core/signing/signer.js';
import { StaticTrustStore, TrustStoreVerifier } from '../../core/signing/trust-store.js';
import { DEFAULT_STRATEGY } from '../../core/signing/verification.js';
import { createHostKeyFile, loadHostIdentity } from '../../server/host-identity.js';
import { signedInvoice } from '../helpers/bindles.js';

const ringText = (...keys: ReturnType<typeof createSecretKey>[]): string =>
  renderKeyRing({ version: '1.0', key: keys.map((k) => publicKeyEntry(k)) });

t.test('a LocalSigner signs and yanks exactly as the secret key does', async (t) => {
  const host = createSecretKey('Host <h@x>', ['host']);
  const signer = new LocalSigner(host);
  t.equal(signer.publicKey, publicKeyOf(host));
  t.same(signer.roles, ['host']);
  const inv = signedInvoice('example.com/a', '1.0.0', []);
  t.same(await signInvoiceWith(inv, 'host', signer, 1700000000), signInvoice(inv, 'host', host, 1700000000));
  t.same(await yankInvoiceWith(inv, signer, 'why', 1700000001), yankInvoice(inv, host, 'why', 1700000001));
  const yanked = await yankInvoiceWith(inv, signer);
  t.equal(await yankInvoiceWith(yanked, signer), yanked, 'an already yanked invoice is returned as is');
  await t.rejects(signInvoiceWith(await signInvoiceWith(inv, 'host', signer), 'host', signer), { code: 'duplicate_signature' });
  await t.rejects(yankInvoiceWith(inv, new LocalSigner(createSecretKey('c', ['creator']))), { code: 'no_suitable_key' });
  t.throws(() => new LocalSigner({ label: 'bad', roles: ['host'], keypair: 'AAAA' }), { code: 'corrupt_key' });
});

t.test('FileTrustStore: reload on demand; a bad or missing file keeps the old keys', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'keyring.toml');
  const a = createSecretKey('A', ['creator']);
  const b = createSecretKey('B', ['creator']);
  const store = await FileTrustStore.open(path, { watch: false });
  t.teardown(() => store.close());
  t.equal(store.current().size, 0, 'a missing file at start is an empty keyring');
  t.equal(store.watching, false);
  writeFileSync(path, ringText(a));
  let result = await store.reload();
  t.same(result, { ok: true, changed: true, keys: 1 });
  const before = store.current();
  t.ok(before.contains(publicKeyOf(a)));
  t.same(await store.reload(), { ok: true, changed: false, keys: 1 }, 'unchanged text: no change');
  t.equal(store.current(), before, 'same snapshot when nothing changed');

  writeFileSync(path, 'version = "1.0"\n[[key]]\nlabel = ');
  result = await store.reload();
  t.equal(result.ok, false);
  t.match(result, { keys: 1, error: { code: 'invalid_key_file', message: new RegExp(`keyring ${path}`) } });
  t.equal(store.current(), before, 'a broken file keeps the keys loaded before');

  writeFileSync(path, ringText(a, b));
  t.same(await store.reload(), { ok: true, changed: true, keys: 2 }, 'a fixed file is taken');
  t.ok(store.current().contains(publicKeyOf(b)));
  t.ok(before.contains(publicKeyOf(a)) && !before.contains(publicKeyOf(b)), 'older snapshots never change');

  renameSync(path, `${path}.gone`);
  result = await store.reload();
  t.match(result, { ok: false, keys: 2, error: { message: /does not exist; write an empty keyring/ } });
  t.equal(store.current().size, 2);
});

t.test('FileTrustStore: with mustExist a missing file at start is an error, an existing one loads', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'keyring.toml');
  await t.rejects(FileTrustStore.open(path, { watch: false, mustExist: true }), {
    code: 'invalid_key_file',
    message: new RegExp(`keyring ${path} does not exist`),
  });
  writeFileSync(path, ringText(createSecretKey('A', ['creator'])));
  const store = await FileTrustStore.open(path, { watch: false, mustExist: true });
  t.teardown(() => store.close());
  t.equal(store.current().size, 1);
});

t.test('FileTrustStore: an invalid file at start is an error', async (t) => {
  const path = join(t.testdir({ 'keyring.toml': 'nonsense' }), 'keyring.toml');
  await t.rejects(FileTrustStore.open(path, { watch: false }), { code: 'invalid_key_file' });
});

t.test('FileTrustStore: replacing the file by an atomic rename is noticed', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'keyring.toml');
  const a = createSecretKey('A', ['creator']);
  writeFileSync(path, ringText());
  const reloads: TrustReload[] = [];
  let notify: () => void = () => undefined;
  const store = await FileTrustStore.open(path, {
    debounceMs: 20,
    onWatchReload: (r) => {
      reloads.push(r);
      notify();
    },
  });
  t.teardown(() => store.close());
  t.equal(store.watching, true);
  // The watcher does not keep the process alive; the bound does (and fails a lost event).
  const next = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const bound = setTimeout(() => reject(new Error('no reload within 60 s')), 60_000);
      notify = () => {
        clearTimeout(bound);
        resolve();
      };
    });

  let seen = next();
  writeFileSync(`${path}.tmp`, ringText(a));
  renameSync(`${path}.tmp`, path);
  await seen;
  t.same(reloads.at(-1), { ok: true, changed: true, keys: 1 });
  t.ok(store.current().contains(publicKeyOf(a)));

  seen = next();
  writeFileSync(path, 'broken = ');
  await seen;
  t.match(reloads.at(-1), { ok: false, keys: 1 }, 'a broken replacement is reported');
  t.ok(store.current().contains(publicKeyOf(a)), 'and the old keys stay');
});

t.test('TrustStoreVerifier follows the trust store and adds the host keys', async (t) => {
  const creator = createSecretKey('Creator', ['creator']);
  const host = createSecretKey('Host', ['host']);
  const hostRing = new Keyring();
  hostRing.add(publicKeyEntry(host));
  let current = new Keyring();
  const verifier = new TrustStoreVerifier({ current: () => current }, DEFAULT_STRATEGY, hostRing);
  const inv = signedInvoice('example.com/b', '1.0.0', [], { key: creator });
  t.throws(() => verifier.verify(inv), 'an unknown creator is refused');
  current = new Keyring({ version: '1.0', key: [publicKeyEntry(creator)] });
  t.doesNotThrow(() => verifier.verify(inv), 'trusted once the store has the key');
  t.ok(verifier.keyring().contains(publicKeyOf(host)), 'host keys are trusted too');
  t.equal(verifier.keyring(), verifier.keyring(), 'merged once per snapshot');
  const fixed = new TrustStoreVerifier(new StaticTrustStore(current), DEFAULT_STRATEGY);
  t.equal(fixed.keyring(), current);
});

t.test('host identity: created only for the single-node default; rotation keeps the old key', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'host-keys.toml');
  await t.rejects(loadHostIdentity(path, { createIfMissing: false, label: 'h' }), {
    code: 'invalid_config', message: new RegExp(`does not exist.*bindle-server keys create-host --out ${path}`),
  });
  const embedded = await loadHostIdentity(join(dir, 'auto.toml'), { createIfMissing: true, label: 'auto host' });
  t.equal(embedded.created, true);
  t.equal(statSync(join(dir, 'auto.toml')).mode & 0o777, 0o600);

  const first = await createHostKeyFile(path, { label: 'host 1', rotate: false });
  t.equal(first.keys, 1);
  t.equal(statSync(path).mode & 0o777, 0o600, 'the key file is 0600');
  await t.rejects(createHostKeyFile(path, { label: 'host 2', rotate: false }), { code: 'invalid_config', message: /already exists; pass --rotate/ });
  const one = await loadHostIdentity(path, { createIfMissing: false, label: 'unused' });
  t.equal(one.created, false);
  t.equal(one.signer.publicKey, first.publicKey);

  const second = await createHostKeyFile(path, { label: 'host 2', rotate: true });
  t.equal(second.keys, 2);
  const two = await loadHostIdentity(path, { createIfMissing: false, label: 'unused' });
  t.equal(two.signer.publicKey, second.publicKey, 'the new key signs');
  t.same(two.keyring.entries().map((e) => e.key), [second.publicKey, first.publicKey], 'both are published, the signing key first');

  const creatorOnly = join(dir, 'creator.toml');
  const store = new SecretKeyStore();
  store.add(createSecretKey('c', ['creator']));
  await store.save(creatorOnly);
  await t.rejects(loadHostIdentity(creatorOnly, { createIfMissing: false, label: 'x' }), { code: 'invalid_config', message: /no key with the host role/ });
  t.notOk(readFileSync(creatorOnly, 'utf8').includes('host'), 'nothing is added to a file without a host key');
});
