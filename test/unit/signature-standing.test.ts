/**
 * Each signature's standing against a keyring (core/signing/signature-standing.ts), what the
 * web UI shows: trusted (with the keyring's label), unknown key, or invalid (with the reason);
 * yank signatures count as trusted only when made with a host key of the keyring. Also the
 * seams it reads: Keyring.entryFor and InvoiceVerifier.trustedKeys.
 */
import t from 'tap';
import { Keyring } from '../../core/signing/keyring.js';
import { createSecretKey, publicKeyEntry, publicKeyOf } from '../../core/signing/keys.js';
import { signInvoice, yankInvoice } from '../../core/signing/sign.js';
import { signatureStandings } from '../../core/signing/signature-standing.js';
import { StaticTrustStore, TrustStoreVerifier } from '../../core/signing/trust-store.js';
import { DEFAULT_STRATEGY } from '../../core/signing/verification.js';
import { KeyringVerifier } from '../../core/signing/verifier.js';
import { signedInvoice } from '../helpers/bindles.js';

const creator = createSecretKey('Creator <c@example.com>', ['creator']);
const approver = createSecretKey('Approver <a@example.com>', ['approver']);
const host = createSecretKey('Host <h@example.com>', ['host']);
const ring = (...keys: ReturnType<typeof createSecretKey>[]): Keyring =>
  new Keyring({ version: '1.0', key: keys.map((k) => ({ ...publicKeyEntry(k), label: `ring: ${k.label}` })) });

t.test('Keyring.entryFor finds an entry by key bytes; malformed or absent keys find none', async (t) => {
  const keyring = ring(creator);
  t.same(keyring.entryFor(publicKeyOf(creator)), { ...publicKeyEntry(creator), label: 'ring: Creator <c@example.com>' });
  t.equal(keyring.entryFor(publicKeyOf(host)), undefined);
  t.equal(keyring.entryFor('not base64!'), undefined);
  const found = keyring.entryFor(publicKeyOf(creator));
  if (found !== undefined) found.label = 'changed';
  t.equal(keyring.entryFor(publicKeyOf(creator))?.label, 'ring: Creator <c@example.com>', 'a copy: the keyring is unchanged');
  const twice = new Keyring({ version: '1.0', key: [{ ...publicKeyEntry(creator), label: 'first' }, { ...publicKeyEntry(creator), label: 'second' }] });
  t.equal(twice.entryFor(publicKeyOf(creator))?.label, 'first', 'the first entry of a key wins, as for contains');
});

t.test('both verifiers tell the keys they trust', async (t) => {
  const keyring = ring(creator);
  t.equal(new KeyringVerifier(keyring, DEFAULT_STRATEGY).trustedKeys(), keyring);
  const hostRing = ring(host);
  const verifier = new TrustStoreVerifier(new StaticTrustStore(keyring), DEFAULT_STRATEGY, hostRing);
  t.ok(verifier.trustedKeys().contains(publicKeyOf(host)), 'with the also-trusted host keys');
  t.ok(verifier.trustedKeys().contains(publicKeyOf(creator)));
});

t.test('signature standings: trusted, unknown key, invalid; yank signatures need a host key', async (t) => {
  const inv = signInvoice(signInvoice(signedInvoice('example.com/s', '1.0.0', [], { key: creator }), 'approver', approver), 'host', host);
  let standings = signatureStandings(inv, ring(creator, host));
  t.match(standings.signatures, [
    { status: 'trusted', keyLabel: 'ring: Creator <c@example.com>', signature: { role: 'creator' } },
    { status: 'unknown_key', signature: { role: 'approver' } },
    { status: 'trusted', keyLabel: 'ring: Host <h@example.com>', signature: { role: 'host' } },
  ]);
  t.same(standings.yankSignatures, []);

  const tampered = { ...inv, bindle: { ...inv.bindle, description: 'changed after signing' } };
  standings = signatureStandings({ ...tampered, bindle: { ...tampered.bindle, version: '9.9.9' } }, ring(creator, host));
  t.match(standings.signatures, [{ status: 'invalid', problem: /does not verify/ }, { status: 'invalid' }, { status: 'invalid' }], 'a changed version breaks every signature');
  const badKey = structuredClone(inv);
  const first = badKey.signature?.[0];
  if (first !== undefined) first.key = 'AAAA';
  t.match(signatureStandings(badKey, ring(creator)).signatures[0], { status: 'invalid', problem: /.+/ }, 'an undecodable key');

  const yanked = yankInvoice(inv, host);
  t.match(signatureStandings(yanked, ring(creator, host)).yankSignatures, [{ status: 'trusted', keyLabel: 'ring: Host <h@example.com>' }]);
  t.match(signatureStandings(yanked, ring(creator)).yankSignatures, [{ status: 'unknown_key' }], 'not a key of the keyring');
  const hostAsCreator = new Keyring({ version: '1.0', key: [{ ...publicKeyEntry(host), roles: ['creator'] }] });
  t.match(signatureStandings(yanked, hostAsCreator).yankSignatures, [{ status: 'unknown_key' }], 'in the keyring, but not as a host key');
  const forgedYank = structuredClone(yanked);
  const y = forgedYank.yankedSignature?.[0];
  const other = inv.signature?.[2]?.signature;
  if (y !== undefined && other !== undefined) y.signature = other;
  t.match(signatureStandings(forgedYank, ring(creator, host)).yankSignatures, [{ status: 'invalid', problem: /does not verify/ }]);
});
