import t from 'tap';
import type { ErrorCode, Invoice, SecretKeyEntry, SignatureRole } from '../../schema/index.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import {
  DEFAULT_STRATEGY,
  Keyring,
  KeyringVerifier,
  createSecretKey,
  formatStrategy,
  parseStrategy,
  publicKeyEntry,
  signInvoice,
  verifyInvoice,
  type VerificationStrategy,
} from '../../core/signing/index.js';

// The invoice of the reference's test_verification_strategies.
const INVOICE = parseInvoice(`
bindleVersion = "1.0.0"

[bindle]
name = "arecebo"
version = "1.2.3"

[[parcel]]
[parcel.label]
sha256 = "aaabbbcccdddeeefff"
name = "telescope.gif"
mediaType = "image/gif"
size = 123_456

[[parcel]]
[parcel.label]
sha256 = "111aaabbbcccdddeee"
name = "telescope.txt"
mediaType = "text/plain"
size = 123_456
`);

const keyCreator = createSecretKey('Test Creator', ['creator']);
const keyApprover = createSecretKey('Test Approver', ['approver']);
const keyHost = createSecretKey('Test Host', ['host']);
const keyProxy = createSecretKey('Test Proxy', ['proxy']);
const keyAnon = createSecretKey('Unknown key', ['approver']);
const keyring = new Keyring();
for (const k of [keyApprover, keyHost, keyCreator, keyProxy]) keyring.add(publicKeyEntry(k));

const CREATIVE: VerificationStrategy = { kind: 'CreativeIntegrity' };
const AUTHORITATIVE: VerificationStrategy = { kind: 'AuthoritativeIntegrity' };
const GREEDY: VerificationStrategy = { kind: 'GreedyVerification' };
const EXHAUSTIVE: VerificationStrategy = { kind: 'ExhaustiveVerification' };
const attest = (roles: SignatureRole[]): VerificationStrategy => ({ kind: 'MultipleAttestation', roles });
const attestGreedy = (roles: SignatureRole[]): VerificationStrategy => ({ kind: 'MultipleAttestationGreedy', roles });

function signedBy(...signers: [SignatureRole, SecretKeyEntry][]): Invoice {
  let inv = INVOICE;
  for (const [role, key] of signers) inv = signInvoice(inv, role, key, 1_700_000_000);
  return inv;
}

/** `expected` is 'pass' or the error code the verification must fail with. */
type Row = [VerificationStrategy, 'pass' | ErrorCode];

/** One block of the reference's test_verification_strategies. */
function truthTable(name: string, inv: Invoice, rows: Row[]): void {
  t.test(`reference truth table: ${name}`, async (t) => {
    for (const [strategy, expected] of rows) {
      const label = formatStrategy(strategy);
      if (expected === 'pass') t.doesNotThrow(() => verifyInvoice(inv, keyring, strategy), `${label} passes`);
      else t.throws(() => verifyInvoice(inv, keyring, strategy), { code: expected }, `${label} fails with ${expected}`);
    }
  });
}

truthTable('only signed by host', signedBy(['host', keyHost]), [
  [CREATIVE, 'missing_role'],
  [AUTHORITATIVE, 'missing_role'],
  [GREEDY, 'missing_role'],
  [attestGreedy(['host']), 'pass'],
  [attestGreedy(['host', 'proxy']), 'missing_role'],
  [EXHAUSTIVE, 'pass'],
]);
truthTable('signed by creator and host', signedBy(['host', keyHost], ['creator', keyCreator]), [
  [CREATIVE, 'pass'],
  [AUTHORITATIVE, 'pass'],
  [GREEDY, 'pass'],
  [attestGreedy(['host']), 'pass'],
  [attestGreedy(['host', 'proxy']), 'missing_role'],
  [EXHAUSTIVE, 'pass'],
]);
truthTable('signed by approver and host', signedBy(['host', keyHost], ['approver', keyApprover]), [
  [CREATIVE, 'missing_role'],
  [AUTHORITATIVE, 'pass'],
  [GREEDY, 'missing_role'],
  [attestGreedy(['host']), 'pass'],
  [attestGreedy(['host', 'proxy']), 'missing_role'],
  [EXHAUSTIVE, 'pass'],
]);
truthTable('signed by creator, proxy and host', signedBy(['host', keyHost], ['creator', keyCreator], ['proxy', keyProxy]), [
  [CREATIVE, 'pass'],
  [AUTHORITATIVE, 'pass'],
  [GREEDY, 'pass'],
  [attestGreedy(['host']), 'pass'],
  [attestGreedy(['host', 'proxy']), 'pass'],
  [EXHAUSTIVE, 'pass'],
]);
truthTable('signed by creator, host and an unknown approver', signedBy(['host', keyHost], ['creator', keyCreator], ['approver', keyAnon]), [
  [CREATIVE, 'pass'],
  [AUTHORITATIVE, 'pass'],
  [GREEDY, 'unknown_signing_key'],
  [attest(['host']), 'pass'],
  [attestGreedy(['host', 'approver']), 'unknown_signing_key'],
  [EXHAUSTIVE, 'unknown_signing_key'],
]);

t.test('reference signing_and_verifying: the creator key must be on the keyring', async (t) => {
  const inv = signedBy(['creator', keyCreator], ['proxy', keyProxy]);
  t.doesNotThrow(() => verifyInvoice(inv, new Keyring({ version: '1.0', key: [publicKeyEntry(keyCreator)] }), CREATIVE));
  const proxyOnly = new Keyring({ version: '1.0', key: [publicKeyEntry(keyProxy)] });
  t.throws(() => verifyInvoice(inv, proxyOnly, CREATIVE), { code: 'unknown_signing_key' });
});

t.test('no known key among the checked signatures', async (t) => {
  const inv = signedBy(['creator', keyAnon]);
  t.throws(() => verifyInvoice(inv, keyring, AUTHORITATIVE), { code: 'no_known_key' });
  t.throws(() => verifyInvoice(inv, keyring, CREATIVE), { code: 'unknown_signing_key' });
});

t.test('an invoice without signatures never verifies', async (t) => {
  const strategies = [CREATIVE, AUTHORITATIVE, GREEDY, EXHAUSTIVE, attest(['host']), attestGreedy(['creator', 'host'])];
  for (const inv of [INVOICE, { ...INVOICE, signature: [] }]) {
    for (const s of strategies) {
      t.throws(() => verifyInvoice(inv, keyring, s), { code: 'unverified', message: /no signatures/ }, formatStrategy(s));
    }
  }
  const verifier = new KeyringVerifier(keyring, DEFAULT_STRATEGY);
  t.equal(verifier.strategy, DEFAULT_STRATEGY);
  t.throws(() => verifier.verify(INVOICE), { code: 'unverified' }, 'through the verifier seam');
  t.doesNotThrow(() => verifier.verify(signedBy(['creator', keyCreator])));
});

t.test('parseStrategy: reference happy paths', async (t) => {
  t.same(parseStrategy('CreativeIntegrity'), { kind: 'CreativeIntegrity' });
  t.same(parseStrategy('AuthoritativeIntegrity'), { kind: 'AuthoritativeIntegrity' });
  t.same(parseStrategy('GreedyVerification'), { kind: 'GreedyVerification' });
  t.same(parseStrategy('ExhaustiveVerification'), { kind: 'ExhaustiveVerification' });
  t.same(parseStrategy('MultipleAttestation[Creator, Host, Approver]'), {
    kind: 'MultipleAttestation',
    roles: ['creator', 'host', 'approver'],
  });
  t.same(parseStrategy('MultipleAttestationGreedy[Creator, Host, Approver]'), {
    kind: 'MultipleAttestationGreedy',
    roles: ['creator', 'host', 'approver'],
  });
  t.same(parseStrategy('CrEaTiVeInTeGrItY'), { kind: 'CreativeIntegrity' }, 'mixed case');
  t.same(
    parseStrategy('  multipleAttestAtion[Creator, Host, Approver] '),
    { kind: 'MultipleAttestation', roles: ['creator', 'host', 'approver'] },
    'extra spaces',
  );
  t.same(parseStrategy('MultipleAttestation[c,h]'), { kind: 'MultipleAttestation', roles: ['creator', 'host'] }, 'role abbreviations');
  t.same(DEFAULT_STRATEGY, { kind: 'GreedyVerification' });
});

t.test('parseStrategy: reference unhappy paths', async (t) => {
  for (const bad of [
    'nopenopenope',
    'Creative Integrity',
    'MultipleAttestationCreator, Host, Approver]',
    'MultipleAttestation[Creator, Host, Approver',
    'MultipleAttestation[Blah, Host, Approver]',
    'MultipleAttestation',
    'MultipleAttestation[]',
    '',
  ]) {
    t.throws(() => parseStrategy(bad), { code: 'invalid_config' }, JSON.stringify(bad));
  }
});

t.test('formatStrategy round-trips through parseStrategy', async (t) => {
  const all = [CREATIVE, AUTHORITATIVE, GREEDY, EXHAUSTIVE, attest(['creator', 'host']), attestGreedy(['proxy'])];
  for (const s of all) t.same(parseStrategy(formatStrategy(s)), s, formatStrategy(s));
  t.equal(formatStrategy(attest(['creator', 'host'])), 'MultipleAttestation[Creator, Host]');
});
