import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
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
  publicKeyOf,
  signInvoice,
  verifyInvoice,
  verifyLabelSignature,
} from '../../core/signing/index.js';
import { SIGNED_SCAFFOLDS, ref } from '../helpers/paths.js';

const STANDALONE_ID = '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd';
const SIGNED_INVOICES = [
  ...SIGNED_SCAFFOLDS.map((name) => `scaffolds/${name}/invoice.toml`),
  `data/standalone/${STANDALONE_ID}/invoice.toml`,
];
const KEY_DIRS = ['data', 'scaffolds/keys'];

async function loadInvoice(path: string): Promise<Invoice> {
  return parseInvoice(await readFile(ref(path), 'utf8'));
}

const keyring = await Keyring.load(ref('scaffolds/keys/keyring.toml'));
const secrets = await SecretKeyStore.load(ref('scaffolds/keys/secret_keys.toml'));

t.test('every reference signature verifies with GreedyVerification', async (t) => {
  for (const path of SIGNED_INVOICES) {
    const inv = await loadInvoice(path);
    t.ok((inv.signature ?? []).length > 0, `${path} is signed`);
    t.doesNotThrow(() => verifyInvoice(inv, keyring, DEFAULT_STRATEGY), path);
  }
});

t.test('re-signing reproduces every reference signature byte for byte', async (t) => {
  for (const path of SIGNED_INVOICES) {
    const inv = await loadInvoice(path);
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
    const ring = await Keyring.load(ref(dir, 'keyring.toml'));
    const store = await SecretKeyStore.load(ref(dir, 'secret_keys.toml'));
    const [entry] = ring.entries();
    const [secret] = store.entries();
    if (entry === undefined || secret === undefined) {
      t.fail(`${dir} key files are empty`);
      continue;
    }
    t.equal(verifyLabelSignature(entry), 'valid', `${dir}/keyring.toml labelSignature`);
    t.equal(publicKeyOf(secret), entry.key, `${dir}: the secret key's public half is on the keyring`);
    t.same(publicKeyEntry(secret), entry, `${dir}: the keyring entry, labelSignature included, is reproduced byte for byte`);
    t.ok(ring.contains(publicKeyOf(secret)));
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

t.test('key files load, save with mode 0600 and round-trip unchanged', async (t) => {
  const dir = t.testdir();
  for (const source of KEY_DIRS) {
    const tag = source.replace('/', '-');
    const ringText = await readFile(ref(source, 'keyring.toml'), 'utf8');
    const ring = await Keyring.load(ref(source, 'keyring.toml'));
    const ringOut = join(dir, `${tag}-keyring.toml`);
    await ring.save(ringOut);
    t.equal((await stat(ringOut)).mode & 0o777, 0o600, `${source} keyring saved with 0600`);
    t.same((await Keyring.load(ringOut)).toDocument(), ring.toDocument(), `${source} keyring loads back equal`);
    t.equal(await readFile(ringOut, 'utf8'), ringText, `${source} keyring text is unchanged`);

    const secretText = await readFile(ref(source, 'secret_keys.toml'), 'utf8');
    const store = await SecretKeyStore.load(ref(source, 'secret_keys.toml'));
    const storeOut = join(dir, `${tag}-secret_keys.toml`);
    await store.save(storeOut);
    t.equal((await stat(storeOut)).mode & 0o777, 0o600, `${source} secret keys saved with 0600`);
    t.same((await SecretKeyStore.load(storeOut)).toDocument(), store.toDocument(), `${source} secret keys load back equal`);
    t.equal(await readFile(storeOut, 'utf8'), secretText, `${source} secret key text is unchanged`);
  }
});
