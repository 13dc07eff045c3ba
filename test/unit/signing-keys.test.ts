import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import t from 'tap';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import {
  ALL_ROLES,
  Keyring,
  SecretKeyStore,
  createSecretKey,
  decodeBase64Strict,
  encodeBase64,
  invoiceCleartext,
  isCanonicalSignatureScalar,
  isSmallOrderEncoding,
  isValidEd25519PublicKey,
  parseRole,
  publicKeyEntry,
  publicKeyOf,
  secretKeyPair,
  signInvoice,
  signText,
  specCleartext,
  verifyInvoice,
  verifyLabelSignature,
  verifyStrict,
  verifyYankSignatures,
  yankCleartext,
  yankInvoice,
} from '../../core/signing/index.js';
import { vec } from '../helpers/paths.js';

const REF_KEY = 'Kcs1TSFDkN+dED0Y6Np0fPBqmvUz0EAULIlUsnlU1sw=';
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const GREEDY = { kind: 'GreedyVerification' } as const;

const INVOICE = parseInvoice(await readFile(vec('scaffolds/valid_v2/invoice.toml'), 'utf8'));
const UNSIGNED = { ...INVOICE, signature: undefined };

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text, 'hex'));
}

function littleEndian32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i += 1) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

function scalarOf(sig: Uint8Array): bigint {
  let n = 0n;
  for (let i = 63; i >= 32; i -= 1) n = (n << 8n) | BigInt(sig[i] ?? 0);
  return n;
}

/** The eight canonical encodings of the points of small order (identity, order 2, 4 and 8). */
const SMALL_ORDER = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
];
/** y = 2 is not on the curve: (y²−1)/(d·y²+1) is not a square mod p (Euler's criterion). */
const NOT_A_POINT = '0200000000000000000000000000000000000000000000000000000000000000';

t.test('base64 is strict: standard alphabet, padded, canonical, exact length', async (t) => {
  const key = decodeBase64Strict(REF_KEY, 32, 'key');
  t.equal(key.length, 32);
  t.equal(encodeBase64(key), REF_KEY, 'round trip');
  const cases: [string, RegExp][] = [
    [REF_KEY.replace('w=', 'x='), /not canonical/],
    [REF_KEY.slice(0, -1), /padding/],
    [REF_KEY.replace('+', '-'), /URL-safe/],
    [`${REF_KEY.slice(0, 10)} ${REF_KEY.slice(10)}`, /whitespace/],
    [`${REF_KEY}\n`, /whitespace/],
    ['', /empty/],
    [encodeBase64(key.subarray(0, 31)), /decodes to 31 bytes, expected 32/],
    [encodeBase64(new Uint8Array(33)), /decodes to 33 bytes, expected 32/],
    [`${REF_KEY.slice(0, -1)}==`, /not valid base64/],
    ['Kcs1*SFDkN+dED0Y6Np0fPBqmvUz0EAULIlUsnlU1sw=', /not valid base64/],
  ];
  for (const [text, message] of cases) {
    t.throws(() => decodeBase64Strict(text, 32, 'key'), { code: 'corrupt_key', message }, JSON.stringify(text));
  }
  t.throws(() => decodeBase64Strict(REF_KEY, 64, 'signature'), { code: 'corrupt_signature', message: /signature decodes to 32 bytes/ });
  t.throws(() => decodeBase64Strict(REF_KEY, 64, 'keypair'), { code: 'corrupt_key', message: /keypair decodes to 32 bytes/ });
  t.throws(() => decodeBase64Strict(REF_KEY.slice(0, -1), 32, 'signature', 'signature by "x"'), {
    code: 'corrupt_signature',
    message: /^signature by "x": /,
  });
});

t.test('Ed25519 public keys must be valid points of large order', async (t) => {
  t.ok(isValidEd25519PublicKey(decodeBase64Strict(REF_KEY, 32, 'key')), 'the reference key');
  t.ok(isValidEd25519PublicKey(nacl.sign.keyPair().publicKey), 'a fresh key');
  t.notOk(isValidEd25519PublicKey(hex(NOT_A_POINT)), 'not on the curve');
  t.notOk(isSmallOrderEncoding(hex(NOT_A_POINT)));
  t.notOk(isValidEd25519PublicKey(hex('0100000000000000000000000000000000000000000000000000000000000080')), 'x = 0 with the sign bit set');
  t.notOk(isValidEd25519PublicKey(hex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')), 'y = p (non-canonical)');
  t.notOk(isValidEd25519PublicKey(littleEndian32(2n ** 255n - 19n + 3n)), 'y = p + 3 (non-canonical encoding of a point)');
  t.ok(isValidEd25519PublicKey(littleEndian32(3n)), 'y = 3 is a point of large order');
  t.notOk(isValidEd25519PublicKey(new Uint8Array(31)), 'wrong length');
  for (const encoding of SMALL_ORDER) {
    t.ok(isSmallOrderEncoding(hex(encoding)), `${encoding} has small order`);
    t.notOk(isValidEd25519PublicKey(hex(encoding)), `${encoding} is rejected`);
  }
  const ring = new Keyring();
  t.throws(() => ring.add({ label: 'weak', roles: ['creator'], key: encodeBase64(hex(SMALL_ORDER[4] ?? '')) }), {
    code: 'corrupt_key',
    message: /small-order/,
  });
  t.throws(() => ring.add({ label: 'bad', roles: ['creator'], key: encodeBase64(hex(NOT_A_POINT)) }), {
    code: 'corrupt_key',
    message: /not a valid Ed25519 point/,
  });
  const signed = signInvoice(UNSIGNED, 'creator', createSecretKey('x', ['creator']));
  const sig = signed.signature?.[0];
  if (sig === undefined) throw new Error('no signature');
  t.throws(() => verifyInvoice({ ...signed, signature: [{ ...sig, key: encodeBase64(hex(SMALL_ORDER[0] ?? '')) }] }, ring, GREEDY), {
    code: 'corrupt_key',
  });
});

t.test('signature scalars must be canonical (no S + L malleability)', async (t) => {
  const key = createSecretKey('Malleable', ['creator']);
  const signed = signInvoice(UNSIGNED, 'creator', key, 1);
  const sig = signed.signature?.[0];
  if (sig === undefined) throw new Error('no signature');
  const bytes = decodeBase64Strict(sig.signature, 64, 'signature');
  t.ok(isCanonicalSignatureScalar(bytes));
  const malleated = new Uint8Array(bytes);
  malleated.set(littleEndian32(scalarOf(bytes) + L), 32);
  t.notOk(isCanonicalSignatureScalar(malleated));
  const pair = secretKeyPair(key);
  const message = new TextEncoder().encode(invoiceCleartext(UNSIGNED, key.label, 'creator'));
  t.ok(nacl.sign.detached.verify(message, malleated, pair.publicKey), 'tweetnacl alone accepts S + L');
  t.notOk(verifyStrict(message, malleated, pair.publicKey), 'strict verification does not');
  const ring = new Keyring({ version: '1.0', key: [publicKeyEntry(key)] });
  t.throws(() => verifyInvoice({ ...signed, signature: [{ ...sig, signature: encodeBase64(malleated) }] }, ring, GREEDY), {
    code: 'corrupt_signature',
    message: /not canonical/,
  });
  const boundary = new Uint8Array(64);
  boundary.set(littleEndian32(L), 32);
  t.notOk(isCanonicalSignatureScalar(boundary), 'S = L');
  boundary.set(littleEndian32(L - 1n), 32);
  t.ok(isCanonicalSignatureScalar(boundary), 'S = L - 1');
});

t.test('roles', async (t) => {
  t.same(ALL_ROLES, ['creator', 'approver', 'proxy', 'host']);
  t.equal(parseRole('Creator'), 'creator');
  t.equal(parseRole('CrEaToR'), 'creator');
  t.equal(parseRole('  ProxY '), 'proxy');
  t.equal(parseRole('h'), 'host');
  t.equal(parseRole('A'), 'approver');
  for (const bad of ['yipyipyip', '', 'constructor', 'hosts']) {
    t.throws(() => parseRole(bad), { code: 'bad_request', message: /creator, approver, proxy, host/ }, JSON.stringify(bad));
  }
});

t.test('secret keys, public entries and label signatures', async (t) => {
  const secret = createSecretKey('Test Creator <c@example.com>', ['creator', 'approver']);
  const pair = secretKeyPair(secret);
  t.equal(pair.publicKey.length, 32);
  t.equal(pair.secretKey.length, 64);
  t.equal(encodeBase64(pair.secretKey), secret.keypair, 'keypair = seed then public key');
  const entry = publicKeyEntry(secret);
  t.same(entry.roles, ['creator', 'approver']);
  t.equal(entry.key, publicKeyOf(secret));
  t.equal(verifyLabelSignature(entry), 'valid');
  t.equal(verifyLabelSignature({ ...entry, labelSignature: undefined }), 'absent');
  t.throws(() => verifyLabelSignature({ ...entry, label: 'Someone Else' }), { code: 'unverified' });
  t.throws(() => verifyLabelSignature({ ...entry, labelSignature: 'AAAA' }), { code: 'corrupt_signature' });
  t.throws(() => verifyLabelSignature({ ...entry, key: 'nope' }), { code: 'corrupt_key' });

  const other = secretKeyPair(createSecretKey('other', ['host']));
  const mismatched = new Uint8Array(64);
  mismatched.set(pair.secretKey.subarray(0, 32), 0);
  mismatched.set(other.publicKey, 32);
  t.throws(() => secretKeyPair({ ...secret, keypair: encodeBase64(mismatched) }), {
    code: 'corrupt_key',
    message: /does not match its seed/,
  });
  t.throws(() => secretKeyPair({ ...secret, keypair: encodeBase64(pair.publicKey) }), { code: 'corrupt_key', message: /32 bytes/ });
  t.throws(() => signInvoice(UNSIGNED, 'creator', { ...secret, keypair: 'x' }), { code: 'corrupt_key' });
});

t.test('keys and signatures equal RFC 8032 test vectors 1 and 2', async (t) => {
  const vectors = [
    {
      seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      message: '',
      signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    },
    {
      seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
      publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      message: 'r',
      signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    },
  ];
  for (const v of vectors) {
    const entry = { label: 'RFC 8032', keypair: encodeBase64(hex(v.seed + v.publicKey)), roles: ['creator' as const] };
    t.equal(Buffer.from(secretKeyPair(entry).publicKey).toString('hex'), v.publicKey, `public key of ${v.seed.slice(0, 8)}`);
    t.equal(signText(entry, v.message), encodeBase64(hex(v.signature)), `signature by ${v.seed.slice(0, 8)}`);
  }
});

t.test('keys and signatures are byte-identical to tweetnacl\'s', async (t) => {
  const fixtureKeys = [
    ...(await SecretKeyStore.load(vec('scaffolds/multi_signed/keys/secret_keys.toml'))).entries(),
    ...(await SecretKeyStore.load(vec('data/secret_keys.toml'))).entries(),
  ];
  const fresh = Array.from({ length: 32 }, (_, i) => createSecretKey(`fresh ${i}`, ['creator']));
  t.ok(fixtureKeys.length >= 4, 'the fixture secret keys are there');
  for (const entry of [...fixtureKeys, ...fresh]) {
    const keypair = decodeBase64Strict(entry.keypair, 64, 'keypair');
    const reference = nacl.sign.keyPair.fromSeed(keypair.subarray(0, 32));
    t.equal(entry.keypair, encodeBase64(reference.secretKey), `${entry.label}: seed then tweetnacl's public key`);
    t.equal(encodeBase64(secretKeyPair(entry).publicKey), encodeBase64(reference.publicKey), `${entry.label}: public key`);
    for (const text of [entry.label, '', 'käse\nsigned text', UNSIGNED.bindle.name]) {
      const expected = encodeBase64(nacl.sign.detached(new TextEncoder().encode(text), reference.secretKey));
      t.equal(signText(entry, text), expected, `${entry.label}: signature over ${JSON.stringify(text)}`);
    }
  }
});

t.test('a key never signs an invoice twice', async (t) => {
  const a = createSecretKey('A', ['creator', 'host']);
  const b = createSecretKey('B', ['host']);
  const once = signInvoice(UNSIGNED, 'creator', a, 10);
  t.throws(() => signInvoice(once, 'host', a, 11), { code: 'duplicate_signature' }, 'when signing, even in another role');
  const twice = signInvoice(once, 'host', b, 11);
  t.equal(twice.signature?.length, 2);
  t.equal(once.signature?.length, 1, 'signing returns a new invoice');

  const ring = new Keyring({ version: '1.0', key: [publicKeyEntry(a), publicKeyEntry(b)] });
  t.doesNotThrow(() => verifyInvoice(twice, ring, GREEDY));
  const hostByA = signInvoice(UNSIGNED, 'host', a, 12).signature ?? [];
  const duplicated = { ...twice, signature: [...(once.signature ?? []), ...hostByA] };
  t.throws(() => verifyInvoice(duplicated, ring, GREEDY), { code: 'duplicate_signature' }, 'when verifying');
  t.throws(() => verifyInvoice(duplicated, ring, { kind: 'CreativeIntegrity' }), { code: 'duplicate_signature' }, 'whatever the strategy');
});

t.test('a signature over the specification cleartext (with at) is accepted', async (t) => {
  const key = createSecretKey('Spec Follower', ['creator']);
  const pair = secretKeyPair(key);
  const at = 1611960337;
  const text = specCleartext(UNSIGNED, key.label, 'creator', at);
  t.equal(text, [key.label, 'enterprise.com/warpcore', '2.0.0', 'creator', String(at), '~', ...(UNSIGNED.parcel ?? []).map((p) => p.label.sha256)].join('\n'));
  const signature = encodeBase64(nacl.sign.detached(new TextEncoder().encode(text), pair.secretKey));
  const inv = { ...UNSIGNED, signature: [{ by: key.label, signature, key: encodeBase64(pair.publicKey), role: 'creator' as const, at }] };
  const ring = new Keyring({ version: '1.0', key: [publicKeyEntry(key)] });
  t.doesNotThrow(() => verifyInvoice(inv, ring, GREEDY));
  const moved = { ...inv, signature: inv.signature.map((s) => ({ ...s, at: at + 1 })) };
  t.throws(() => verifyInvoice(moved, ring, GREEDY), { code: 'unverified', message: /"Spec Follower" \(creator\)/ }, 'at is signed in that form');
});

t.test('yank signatures', async (t) => {
  const host = createSecretKey('Bindle Host', ['host']);
  const creator = createSecretKey('Creator', ['creator']);
  const signed = signInvoice(UNSIGNED, 'creator', creator, 100);
  const yanked = yankInvoice(signed, host, 'CVE-1234', 200);
  t.equal(yanked.yanked, true);
  t.equal(signed.yanked, undefined, 'the input invoice is not changed');
  t.same(yanked.signature, signed.signature, 'the invoice signatures are kept');
  const y = yanked.yankedSignature?.[0];
  if (y === undefined) throw new Error('no yank signature');
  t.same({ by: y.by, key: y.key, role: y.role, at: y.at }, { by: 'Bindle Host', key: publicKeyOf(host), role: 'host', at: 200 });
  const statement = new TextEncoder().encode(yankCleartext(signed, 'Bindle Host', 200, 'CVE-1234'));
  t.ok(verifyStrict(statement, decodeBase64Strict(y.signature, 64, 'signature'), secretKeyPair(host).publicKey));

  const ring = new Keyring({ version: '1.0', key: [publicKeyEntry(host), publicKeyEntry(creator)] });
  t.doesNotThrow(() => verifyYankSignatures(yanked, ring, 'CVE-1234'));
  t.doesNotThrow(() => verifyInvoice(yanked, ring, GREEDY), 'yanking does not invalidate the invoice');
  t.throws(() => verifyYankSignatures(yanked, ring), { code: 'unverified' }, 'a different reason');
  t.throws(() => verifyYankSignatures({ ...yanked, bindle: { ...yanked.bindle, version: '2.0.1' } }, ring, 'CVE-1234'), { code: 'unverified' });
  t.throws(() => verifyYankSignatures(yanked, ring.withRoles(['creator']), 'CVE-1234'), { code: 'unknown_signing_key' });
  const asCreator = new Keyring({ version: '1.0', key: [{ ...publicKeyEntry(host), roles: ['creator'] }] });
  t.throws(() => verifyYankSignatures(yanked, asCreator, 'CVE-1234'), { code: 'unknown_signing_key' }, 'the key must be a host key');
  t.throws(() => verifyYankSignatures({ ...yanked, yankedSignature: [{ ...y, role: 'creator' }] }, ring, 'CVE-1234'), { code: 'unverified' });
  t.throws(() => verifyYankSignatures({ ...yanked, yankedSignature: [y, y] }, ring, 'CVE-1234'), { code: 'duplicate_signature' });
  t.doesNotThrow(() => verifyYankSignatures(signed, ring), 'no yank signatures');

  t.equal(yankInvoice(yanked, host, 'again', 300), yanked, 'yanking a yanked invoice changes nothing');
  const plain = yankInvoice(signed, host, undefined, 201);
  t.doesNotThrow(() => verifyYankSignatures(plain, ring), 'an empty reason');
  t.throws(() => yankInvoice(signed, creator), { code: 'no_suitable_key' });
});

t.test('Keyring', async (t) => {
  const a = publicKeyEntry(createSecretKey('A', ['creator']));
  const b = publicKeyEntry(createSecretKey('B', ['host', 'approver']));
  const ring = new Keyring();
  ring.add(a);
  ring.add({ ...a, label: 'A again', roles: ['host'] });
  t.equal(ring.size, 1, 'adding a key twice is a no-op');
  t.ok(ring.contains(a.key));
  t.notOk(ring.contains(b.key));
  t.notOk(ring.contains('garbage'));
  ring.add(b);
  t.same(ring.withRoles(['host']).entries().map((e) => e.label), ['B']);
  t.same(ring.withRoles(['creator', 'approver']).entries().map((e) => e.label), ['A', 'B']);
  t.equal(ring.withRoles(['proxy']).size, 0);

  const withBroken = new Keyring({ version: '1.0', key: [{ label: 'broken', roles: ['creator'], key: 'not-base64' }] });
  t.equal(withBroken.size, 1, 'malformed entries load unchanged');
  t.notOk(withBroken.contains('not-base64'), 'and never match');
  const merged = withBroken.merge(ring).merge(ring);
  t.same(merged.entries().map((e) => e.label), ['broken', 'A', 'B']);
  t.same(merged.toDocument().version, '1.0');

  const dir = t.testdir({ 'bad.toml': 'version = "1.0"\n[[key]]\nlabel = 1\n', 'syntax.toml': '[[key' });
  t.equal((await Keyring.loadOrEmpty(join(dir, 'missing.toml'))).size, 0);
  await t.rejects(Keyring.load(join(dir, 'missing.toml')), { code: 'invalid_key_file', message: /missing\.toml/ });
  await t.rejects(Keyring.load(join(dir, 'bad.toml')), { code: 'invalid_key_file', message: /bad\.toml/ });
  await t.rejects(Keyring.loadOrEmpty(join(dir, 'syntax.toml')), { code: 'invalid_key_file', message: /syntax\.toml/ });
  const out = join(dir, 'sub', 'keyring.toml');
  await merged.save(out);
  t.equal((await stat(out)).mode & 0o777, 0o600);
  t.same((await Keyring.load(out)).toDocument(), merged.toDocument());
});

t.test('SecretKeyStore', async (t) => {
  const store = new SecretKeyStore();
  const pikachu = createSecretKey('Pikachu', ['creator']);
  const jigglypuff = createSecretKey('Jigglypuff', ['creator', 'host']);
  store.add(pikachu);
  store.add(jigglypuff);
  store.add(pikachu);
  t.equal(store.size, 2, 'adding a key twice is a no-op');
  t.throws(() => store.add({ label: 'bad', roles: ['host'], keypair: 'AAAA' }), { code: 'corrupt_key' });
  t.equal(store.firstMatching('creator')?.label, 'Pikachu', 'first in file order');
  t.equal(store.firstMatching('host')?.label, 'Jigglypuff');
  t.equal(store.firstMatching('proxy'), undefined);
  t.equal(store.firstMatching('creator', { exact: 'Jigglypuff' })?.label, 'Jigglypuff');
  t.equal(store.firstMatching('creator', { exact: 'jigglypuff' }), undefined, 'exact match is case-sensitive');
  t.equal(store.firstMatching('creator', { partial: 'puff' })?.label, 'Jigglypuff');
  t.equal(store.firstMatching('creator', { partial: 'pika' })?.label, 'Pikachu', 'partial match ignores case');
  t.equal(store.firstMatching('host', { partial: 'pika' }), undefined, 'the role must match too');
  t.same(store.allMatching('creator').map((k) => k.label), ['Pikachu', 'Jigglypuff']);

  const dir = t.testdir();
  const path = join(dir, 'keys', 'secret_keys.toml');
  const first = await SecretKeyStore.loadOrCreate(path, 'Host Key', ['host']);
  t.equal(first.created, true);
  t.equal((await stat(path)).mode & 0o777, 0o600, 'created with 0600');
  t.equal(first.store.firstMatching('host')?.label, 'Host Key');
  const second = await SecretKeyStore.loadOrCreate(path, 'Other', ['creator']);
  t.equal(second.created, false);
  t.same(second.store.toDocument(), first.store.toDocument(), 'the existing file is loaded, not replaced');
  const [race1, race2] = await Promise.all([
    SecretKeyStore.loadOrCreate(join(dir, 'race.toml'), 'R', ['host']),
    SecretKeyStore.loadOrCreate(join(dir, 'race.toml'), 'R', ['host']),
  ]);
  t.same(race1.store.toDocument(), race2.store.toDocument(), 'concurrent creation agrees on one key');
  t.equal([race1.created, race2.created].filter(Boolean).length, 1, 'exactly one of them created the file');

  await writeFile(join(dir, 'bad.toml'), 'version = "1.0"\nkey = 3\n');
  await t.rejects(SecretKeyStore.load(join(dir, 'bad.toml')), { code: 'invalid_key_file', message: /bad\.toml/ });
  await t.rejects(SecretKeyStore.loadOrCreate(join(dir, 'bad.toml'), 'x', ['host']), { code: 'invalid_key_file' });
});
