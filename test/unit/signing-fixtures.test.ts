import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Invoice } from '../../schema/index.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import {
  DEFAULT_STRATEGY,
  Keyring,
  SecretKeyStore,
  createSecretKey,
  decodeBase64Strict,
  encodeBase64,
  publicKeyEntry,
  parseStrategy,
  publicKeyOf,
  signInvoice,
  verifyInvoice,
  verifyLabelSignature,
} from '../../core/signing/index.js';
import { SIGNED_SCAFFOLDS, VECTOR_SETS, vec, type VectorSet } from '../helpers/paths.js';

const STANDALONE_ID = '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd';
const SIGNED_INVOICES = [
  ...SIGNED_SCAFFOLDS.map((name) => `scaffolds/${name}/invoice.toml`),
  `data/standalone/${STANDALONE_ID}/invoice.toml`,
];
const KEY_DIRS = ['data', 'scaffolds/keys'];

async function loadInvoice(path: string, at: (...parts: string[]) => string = vec): Promise<Invoice> {
  return parseInvoice(await readFile(at(path), 'utf8'));
}

const keyring = await Keyring.load(vec('scaffolds/keys/keyring.toml'));

for (const set of VECTOR_SETS) {
  t.test(`${set.name} vectors: signatures, keys and key files`, { skip: set.skip }, async (t) => {
    await signatureTests(t, set);
  });
}

/** What every vector set must pass: its signatures verify, re-sign byte for byte, and its key files agree. */
async function signatureTests(t: Test, set: VectorSet): Promise<void> {
  const ring = await Keyring.load(set.path('scaffolds/keys/keyring.toml'));
  const secrets = await SecretKeyStore.load(set.path('scaffolds/keys/secret_keys.toml'));

  t.test('every signature verifies with GreedyVerification', async (t) => {
    for (const path of SIGNED_INVOICES) {
      const inv = await loadInvoice(path, set.path);
      t.ok((inv.signature ?? []).length > 0, `${path} is signed`);
      t.doesNotThrow(() => verifyInvoice(inv, ring, DEFAULT_STRATEGY), path);
    }
  });

  t.test('re-signing reproduces every signature byte for byte', async (t) => {
    for (const path of SIGNED_INVOICES) {
      const inv = await loadInvoice(path, set.path);
      for (const original of inv.signature ?? []) {
        const key = secrets.firstMatching(original.role, { exact: original.by });
        if (key === undefined) {
          t.fail(`no secret key for ${original.by} (${original.role})`);
          continue;
        }
        const unsigned: Invoice = { ...inv, signature: undefined };
        const resigned = signInvoice(unsigned, original.role, key, original.at);
        t.same(resigned.signature, [original], `${path}: ${original.by} (${original.role})`);
        t.equal(unsigned.signature, undefined, 'the input invoice is not changed');
      }
    }
  });

  t.test('the secret key matches the keyring and its label signature verifies', async (t) => {
    for (const dir of KEY_DIRS) {
      const dirRing = await Keyring.load(set.path(dir, 'keyring.toml'));
      const store = await SecretKeyStore.load(set.path(dir, 'secret_keys.toml'));
      const [entry] = dirRing.entries();
      const [secret] = store.entries();
      if (entry === undefined || secret === undefined) {
        t.fail(`${dir} key files are empty`);
        continue;
      }
      t.equal(verifyLabelSignature(entry), 'valid', `${dir}/keyring.toml labelSignature`);
      t.equal(publicKeyOf(secret), entry.key, `${dir}: the secret key's public half is on the keyring`);
      t.same(publicKeyEntry(secret), entry, `${dir}: the keyring entry, labelSignature included, is reproduced byte for byte`);
      t.ok(dirRing.contains(publicKeyOf(secret)));
    }
  });

  t.test('key files load, save with mode 0600 and round-trip unchanged', async (t) => {
    const dir = t.testdir();
    for (const source of KEY_DIRS) {
      const tag = source.replace('/', '-');
      const ringText = await readFile(set.path(source, 'keyring.toml'), 'utf8');
      const sourceRing = await Keyring.load(set.path(source, 'keyring.toml'));
      const ringOut = join(dir, `${tag}-keyring.toml`);
      await sourceRing.save(ringOut);
      t.equal((await stat(ringOut)).mode & 0o777, 0o600, `${source} keyring saved with 0600`);
      t.same((await Keyring.load(ringOut)).toDocument(), sourceRing.toDocument(), `${source} keyring loads back equal`);
      t.equal(await readFile(ringOut, 'utf8'), ringText, `${source} keyring text is unchanged`);

      const secretText = await readFile(set.path(source, 'secret_keys.toml'), 'utf8');
      const store = await SecretKeyStore.load(set.path(source, 'secret_keys.toml'));
      const storeOut = join(dir, `${tag}-secret_keys.toml`);
      await store.save(storeOut);
      t.equal((await stat(storeOut)).mode & 0o777, 0o600, `${source} secret keys saved with 0600`);
      t.same((await SecretKeyStore.load(storeOut)).toDocument(), store.toDocument(), `${source} secret keys load back equal`);
      t.equal(await readFile(storeOut, 'utf8'), secretText, `${source} secret key text is unchanged`);
    }
  });
}

t.test('multi_signed: each verification strategy accepts or refuses the creator, approver and proxy signatures', async (t) => {
  const inv = await loadInvoice('scaffolds/multi_signed/invoice.toml');
  t.same((inv.signature ?? []).map((s) => s.role), ['creator', 'approver', 'proxy']);
  const all = await Keyring.load(vec('scaffolds/multi_signed/keys/keyring.toml'));
  const creatorOnly = keyring;
  const cases: { strategy: string; ring: Keyring; ok: boolean }[] = [
    { strategy: 'GreedyVerification', ring: all, ok: true },
    { strategy: 'GreedyVerification', ring: creatorOnly, ok: false },
    { strategy: 'CreativeIntegrity', ring: creatorOnly, ok: true },
    { strategy: 'AuthoritativeIntegrity', ring: creatorOnly, ok: true },
    { strategy: 'ExhaustiveVerification', ring: all, ok: true },
    { strategy: 'ExhaustiveVerification', ring: creatorOnly, ok: false },
    { strategy: 'MultipleAttestation[Creator, Approver]', ring: all, ok: true },
    { strategy: 'MultipleAttestation[Creator, Approver]', ring: creatorOnly, ok: false },
    { strategy: 'MultipleAttestationGreedy[Creator, Approver, Proxy]', ring: all, ok: true },
    { strategy: 'MultipleAttestationGreedy[Creator, Approver, Proxy]', ring: creatorOnly, ok: false },
  ];
  for (const c of cases) {
    const name = `${c.strategy} with ${c.ring === all ? 'all three keys' : 'only the creator key'}`;
    if (c.ok) t.doesNotThrow(() => verifyInvoice(inv, c.ring, parseStrategy(c.strategy)), name);
    else t.throws(() => verifyInvoice(inv, c.ring, parseStrategy(c.strategy)), name);
  }
});

/** y = 2 has no x on the curve ((y²−1)/(d·y²+1) is not a square mod p). */
const NOT_A_POINT = encodeBase64(Uint8Array.from([2, ...new Array<number>(31).fill(0)]));

function flipFirstSignatureByte(base64: string): string {
  const bytes = decodeBase64Strict(base64, 64, 'signature');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  return encodeBase64(bytes);
}

t.test('tampering with any signed field is caught with the right code', async (t) => {
  const inv = await loadInvoice('scaffolds/valid_v2/invoice.toml');
  const sig = inv.signature?.[0];
  if (sig === undefined) throw new Error('valid_v2 has no signature');
  const parcels = inv.parcel ?? [];
  t.equal(parcels.length, 2, 'valid_v2 has two parcels to reorder');
  const [first, second] = parcels;
  if (first === undefined || second === undefined) throw new Error('valid_v2 parcels missing');

  const cases: { name: string; inv: Invoice; code: string }[] = [
    { name: 'by', inv: { ...inv, signature: [{ ...sig, by: 'Romulan Star Empire' }] }, code: 'unverified' },
    { name: 'name', inv: { ...inv, bindle: { ...inv.bindle, name: 'enterprise.com/warpcore2' } }, code: 'unverified' },
    { name: 'version', inv: { ...inv, bindle: { ...inv.bindle, version: '2.0.1' } }, code: 'unverified' },
    { name: 'role', inv: { ...inv, signature: [{ ...sig, role: 'approver' }] }, code: 'unverified' },
    {
      name: 'parcel sha256',
      inv: { ...inv, parcel: [first, { ...second, label: { ...second.label, sha256: first.label.sha256 } }] },
      code: 'unverified',
    },
    { name: 'parcel order', inv: { ...inv, parcel: [second, first] }, code: 'unverified' },
    { name: 'parcel removed', inv: { ...inv, parcel: [first] }, code: 'unverified' },
    {
      name: 'signature bytes',
      inv: { ...inv, signature: [{ ...sig, signature: flipFirstSignatureByte(sig.signature) }] },
      code: 'unverified',
    },
    {
      name: 'signature truncated',
      inv: { ...inv, signature: [{ ...sig, signature: sig.signature.slice(0, 84) }] },
      code: 'corrupt_signature',
    },
    {
      name: 'key replaced by another valid key',
      inv: { ...inv, signature: [{ ...sig, key: publicKeyOf(createSecretKey('Other', ['creator'])) }] },
      code: 'unverified',
    },
    { name: 'key not a curve point', inv: { ...inv, signature: [{ ...sig, key: NOT_A_POINT }] }, code: 'corrupt_key' },
    { name: 'key not base64', inv: { ...inv, signature: [{ ...sig, key: '!!' + sig.key.slice(2) }] }, code: 'corrupt_key' },
  ];
  for (const c of cases) {
    t.throws(() => verifyInvoice(c.inv, keyring, DEFAULT_STRATEGY), { code: c.code }, c.name);
  }
  // The reference cleartext does not include `at`, so changing it does not break the signature.
  t.doesNotThrow(() => verifyInvoice({ ...inv, signature: [{ ...sig, at: sig.at + 1 }] }, keyring, DEFAULT_STRATEGY), 'at is not signed');
});
