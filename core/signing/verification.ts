/**
 * Verification strategies (the reference's six, parsed and printed as it does) and invoice
 * verification against a Keyring, following the reference algorithm with distinct errors for
 * each way trust can fail. Yank signatures are verified separately.
 */
import type { Invoice, Signature, SignatureRole } from '../../schema/index.js';
import { BindleError, isBindleError } from '../errors/bindle-error.js';
import { invoiceCleartext, specCleartext, yankCleartext } from './cleartext.js';
import { verifyStrict } from './ed25519-point.js';
import type { Keyring } from './keyring.js';
import { decodePublicKey, decodeSignature } from './keys.js';
import { parseRole, roleTitle } from './roles.js';

/** A trust strategy from the signing specification, as the reference implements them. */
export type VerificationStrategy =
  | { kind: 'CreativeIntegrity' | 'AuthoritativeIntegrity' | 'GreedyVerification' | 'ExhaustiveVerification' }
  | { kind: 'MultipleAttestation' | 'MultipleAttestationGreedy'; roles: SignatureRole[] };

/** The default strategy of the reference server and client. */
export const DEFAULT_STRATEGY: VerificationStrategy = Object.freeze({ kind: 'GreedyVerification' });

/**
 * What a strategy checks (the reference's table):
 * - `roles`: the roles it is about;
 * - `allValid`: verify every signature's cryptography, not only those in `roles`;
 * - `allVerified`: every checked signer must be in the keyring;
 * - `allRoles`: each of `roles` must have a signature.
 */
interface StrategyRules {
  roles: readonly SignatureRole[];
  allValid: boolean;
  allVerified: boolean;
  allRoles: boolean;
}

function rulesOf(s: VerificationStrategy): StrategyRules {
  switch (s.kind) {
    case 'GreedyVerification':
      return { roles: ['creator'], allValid: true, allVerified: true, allRoles: true };
    case 'CreativeIntegrity':
      return { roles: ['creator'], allValid: false, allVerified: true, allRoles: true };
    case 'AuthoritativeIntegrity':
      return { roles: ['creator', 'approver'], allValid: false, allVerified: false, allRoles: false };
    case 'ExhaustiveVerification':
      return { roles: ['creator', 'approver', 'host', 'proxy'], allValid: true, allVerified: true, allRoles: false };
    case 'MultipleAttestation':
      return { roles: s.roles, allValid: false, allVerified: true, allRoles: true };
    case 'MultipleAttestationGreedy':
      return { roles: s.roles, allValid: true, allVerified: true, allRoles: true };
  }
}

type SimpleKind = 'CreativeIntegrity' | 'AuthoritativeIntegrity' | 'GreedyVerification' | 'ExhaustiveVerification';

const SIMPLE_STRATEGIES = new Map<string, SimpleKind>([
  ['creativeintegrity', 'CreativeIntegrity'],
  ['authoritativeintegrity', 'AuthoritativeIntegrity'],
  ['greedyverification', 'GreedyVerification'],
  ['exhaustiveverification', 'ExhaustiveVerification'],
]);

/**
 * Parses a strategy name exactly as the reference's `FromStr` does: surrounding whitespace is
 * trimmed, case is ignored, and the attestation strategies take a role list, e.g.
 * `MultipleAttestation[Creator, Host]`. As in the reference, anything from a `[` on is ignored
 * after one of the four simple names. Throws `invalid_config`.
 */
export function parseStrategy(text: string): VerificationStrategy {
  const fail = (problem: string): BindleError =>
    new BindleError('invalid_config', `invalid verification strategy ${JSON.stringify(text)}: ${problem}`);
  if (text.length === 0) throw fail('it is empty');
  const normalized = text.trim().toLowerCase();
  const bracket = normalized.indexOf('[');
  const name = bracket < 0 ? normalized : normalized.slice(0, bracket);
  const rest = bracket < 0 ? undefined : normalized.slice(bracket + 1);
  const simple = SIMPLE_STRATEGIES.get(name);
  if (simple !== undefined) return { kind: simple };
  if (name !== 'multipleattestation' && name !== 'multipleattestationgreedy') {
    throw fail(
      'unknown strategy; expected CreativeIntegrity, AuthoritativeIntegrity, GreedyVerification, ExhaustiveVerification, MultipleAttestation[roles] or MultipleAttestationGreedy[roles]',
    );
  }
  if (rest === undefined) throw fail('a multiple attestation strategy needs its roles, e.g. MultipleAttestation[Creator, Host]');
  if (!rest.endsWith(']')) throw fail("missing closing ']' on the roles");
  const roles = rest
    .replace(/\]+$/, '')
    .split(',')
    .map((part) => {
      try {
        return parseRole(part);
      } catch (err) {
        if (isBindleError(err)) throw fail(err.message);
        throw err;
      }
    });
  return { kind: name === 'multipleattestation' ? 'MultipleAttestation' : 'MultipleAttestationGreedy', roles };
}

/** The strategy's name as the reference spells it, e.g. `MultipleAttestation[Creator, Host]`. */
export function formatStrategy(s: VerificationStrategy): string {
  if (s.kind === 'MultipleAttestation' || s.kind === 'MultipleAttestationGreedy') {
    return `${s.kind}[${s.roles.map(roleTitle).join(', ')}]`;
  }
  return s.kind;
}

const utf8 = new TextEncoder();

function invoiceName(inv: Invoice): string {
  return `${inv.bindle.name}/${inv.bindle.version}`;
}

function describe(s: Signature): string {
  return `signature by ${JSON.stringify(s.by)} (${s.role})`;
}

/** Throws `duplicate_signature` when one key made two of `signatures`. */
function rejectDuplicateKeys(inv: Invoice, signatures: readonly Signature[], kind: string): void {
  const seen = new Map<string, Signature>();
  for (const s of signatures) {
    const earlier = seen.get(s.key);
    if (earlier !== undefined) {
      throw new BindleError(
        'duplicate_signature',
        `${kind} ${describe(s)} on ${invoiceName(inv)} uses the same key as the ${describe(earlier)}; a key may sign an invoice only once`,
      );
    }
    seen.set(s.key, s);
  }
}

/**
 * Checks one signature's cryptography: the key (`corrupt_key`), the signature encoding
 * (`corrupt_signature`), then the signature itself over the reference cleartext or, failing
 * that, the specification's cleartext with `at` (`unverified`). Whether the key is trusted is
 * not this function's concern.
 */
export function verifySignature(inv: Invoice, s: Signature): void {
  const context = `${describe(s)} on ${invoiceName(inv)}`;
  const key = decodePublicKey(s.key, context);
  const signature = decodeSignature(s.signature, context);
  if (verifyStrict(utf8.encode(invoiceCleartext(inv, s.by, s.role)), signature, key)) return;
  if (verifyStrict(utf8.encode(specCleartext(inv, s.by, s.role, s.at)), signature, key)) return;
  throw new BindleError(
    'unverified',
    `${context} does not verify: the invoice's name, version, parcels or the signer's name or role differ from what was signed`,
  );
}

function roleList(roles: readonly SignatureRole[]): string {
  return roles.length === 0 ? '(no roles)' : roles.join(' or ');
}

/**
 * Verifies an invoice's `[[signature]]`s against `keyring` with `strategy`; returns normally
 * when the invoice is trusted. Following the reference, signatures are taken in order; those in
 * the strategy's roles (or all, for the greedy and exhaustive strategies) are checked
 * cryptographically and, where the strategy says so, must be by a known key. Errors:
 * - `unverified`: no signatures at all, or a well-formed signature that does not verify;
 * - `corrupt_key` / `corrupt_signature`: a key or signature that cannot be decoded or used;
 * - `duplicate_signature`: one key made two signatures on the invoice (checked first, for all);
 * - `unknown_signing_key`: a checked signer is not in the keyring and the strategy requires
 *   all checked signers to be known;
 * - `missing_role`: no signature in a role the strategy needs (also when no signature was in
 *   any of the strategy's roles, where the reference says "no known key");
 * - `no_known_key`: signatures were checked but none was made with a key in the keyring.
 * Key entries' roles in the keyring are not consulted, as in the reference.
 */
export function verifyInvoice(inv: Invoice, keyring: Keyring, strategy: VerificationStrategy): void {
  const signatures = inv.signature ?? [];
  const name = formatStrategy(strategy);
  if (signatures.length === 0) {
    throw new BindleError('unverified', `invoice ${invoiceName(inv)} has no signatures; at least one is required`);
  }
  rejectDuplicateKeys(inv, signatures, 'the');
  const rules = rulesOf(strategy);
  let knownKey = false;
  let considered = 0;
  const filled = new Set<SignatureRole>();
  for (const s of signatures) {
    const targetRole = rules.roles.includes(s.role);
    if (!rules.allValid && !targetRole) continue;
    verifySignature(inv, s);
    if (!targetRole && !rules.allVerified) continue;
    if (rules.allRoles) filled.add(s.role);
    considered += 1;
    if (keyring.contains(s.key)) {
      knownKey = true;
    } else if (rules.allVerified) {
      throw new BindleError(
        'unknown_signing_key',
        `${describe(s)} on ${invoiceName(inv)} was made with a key that is not in the keyring; strategy ${name} requires every checked signer to be known`,
      );
    }
  }
  if (!knownKey) {
    if (considered === 0) {
      throw new BindleError(
        'missing_role',
        `invoice ${invoiceName(inv)} has no ${roleList(rules.roles)} signature, which strategy ${name} requires`,
      );
    }
    throw new BindleError(
      'no_known_key',
      `none of the signatures on ${invoiceName(inv)} that strategy ${name} checks was made with a key in the keyring`,
    );
  }
  if (rules.allRoles) {
    for (const role of rules.roles) {
      if (!filled.has(role)) {
        throw new BindleError(
          'missing_role',
          `invoice ${invoiceName(inv)} has no ${role} signature, which strategy ${name} requires`,
        );
      }
    }
  }
}

/**
 * Verifies an invoice's `yankedSignature`s. Each must have the role `host`, be made with a key
 * that is in `keyring` with the host role, and verify over the yank cleartext with `reason`
 * (default empty: the invoice format has no field for the reason, so the verifier must be told
 * it; our server yanks with an empty reason). No yank signatures is not an error (the reference
 * yanks without signing). Errors: `unverified` (wrong role or a signature that does not verify),
 * `corrupt_key`, `corrupt_signature`, `duplicate_signature` (one key yanked twice),
 * `unknown_signing_key` (not a known host key).
 */
export function verifyYankSignatures(inv: Invoice, keyring: Keyring, reason = ''): void {
  const yanks = inv.yankedSignature ?? [];
  rejectDuplicateKeys(inv, yanks, 'yank');
  const hostKeys = keyring.withRoles(['host']);
  for (const y of yanks) {
    const context = `yank ${describe(y)} on ${invoiceName(inv)}`;
    if (y.role !== 'host') throw new BindleError('unverified', `${context}: only the host role may yank`);
    const key = decodePublicKey(y.key, context);
    const signature = decodeSignature(y.signature, context);
    if (!verifyStrict(utf8.encode(yankCleartext(inv, y.by, y.at, reason)), signature, key)) {
      throw new BindleError('unverified', `${context} does not verify over the yank statement`);
    }
    if (!hostKeys.contains(y.key)) {
      throw new BindleError('unknown_signing_key', `${context} was made with a key that is not a host key in the keyring`);
    }
  }
}
