/**
 * Signing invoices: appending a `[[signature]]` in the reference cleartext form, and yanking
 * (setting `yanked` and appending a host `yankedSignature`). Both return new invoices and never
 * change the one passed in.
 */
import type { Invoice, SecretKeyEntry, Signature, SignatureRole } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';
import { invoiceCleartext, yankCleartext } from './cleartext.js';
import { publicKeyOf, signText } from './keys.js';

/** The current time in unix seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function checkAt(at: number): number {
  if (!Number.isSafeInteger(at) || at < 0) {
    throw new BindleError('bad_request', `signature time must be a non-negative whole number of unix seconds, got ${at}`);
  }
  return at;
}

/**
 * True when a signature in `signatures` was made with `publicKey`. Keys are canonical base64,
 * which is one-to-one, so equal text means equal bytes.
 */
function signedWith(signatures: readonly Signature[] | undefined, publicKey: string): boolean {
  return (signatures ?? []).some((s) => s.key === publicKey);
}

/**
 * Returns a copy of `inv` with a signature by `key` in `role` appended: `by` = the key's label,
 * `key` = its base64 public key, `at` = `at` (default now), signed over the reference
 * cleartext. Throws `duplicate_signature` when this key already signed the invoice, and
 * `corrupt_key` when the keypair is unusable. The key's own roles are not consulted; choose the
 * key with `SecretKeyStore.firstMatching`.
 */
export function signInvoice(inv: Invoice, role: SignatureRole, key: SecretKeyEntry, at: number = nowSeconds()): Invoice {
  const publicKey = publicKeyOf(key);
  if (signedWith(inv.signature, publicKey)) {
    throw new BindleError(
      'duplicate_signature',
      `key ${JSON.stringify(key.label)} has already signed ${inv.bindle.name}/${inv.bindle.version}; a key may sign an invoice only once`,
    );
  }
  const signature: Signature = {
    by: key.label,
    signature: signText(key, invoiceCleartext(inv, key.label, role)),
    key: publicKey,
    role,
    at: checkAt(at),
  };
  const out = structuredClone(inv);
  out.signature = [...(out.signature ?? []), signature];
  return out;
}

/**
 * Returns a yanked copy of `inv`: `yanked = true` and a `host` signature by `hostKey` over the
 * yank cleartext (with `reason`, default empty) appended to `yankedSignature`. The reason is
 * not stored on the invoice (the format has no field for it), so a verifier must be given the
 * same reason. An invoice that is already yanked is returned unchanged (the same object).
 * Throws `no_suitable_key` when `hostKey` does not have the host role, `corrupt_key` when its
 * keypair is unusable.
 */
export function yankInvoice(inv: Invoice, hostKey: SecretKeyEntry, reason = '', at: number = nowSeconds()): Invoice {
  if (inv.yanked === true) return inv;
  if (!hostKey.roles.includes('host')) {
    throw new BindleError('no_suitable_key', `key ${JSON.stringify(hostKey.label)} does not have the host role needed to yank`);
  }
  const signature: Signature = {
    by: hostKey.label,
    signature: signText(hostKey, yankCleartext(inv, hostKey.label, checkAt(at), reason)),
    key: publicKeyOf(hostKey),
    role: 'host',
    at,
  };
  const out = structuredClone(inv);
  out.yanked = true;
  out.yankedSignature = [...(out.yankedSignature ?? []), signature];
  return out;
}
