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

/** Who signs: the label written as `by` and the base64 public key written as `key`. */
export interface SignerIdentity {
  readonly label: string;
  readonly publicKey: string;
  /** The roles the key holds; only yanking consults them (it needs `host`). */
  readonly roles: readonly SignatureRole[];
}

/**
 * A signature about to be made: the cleartext to sign, and `finish`, which takes the base64
 * signature over its UTF-8 bytes and returns the signed copy of the invoice. Lets a signer that
 * cannot hand out its secret key (a KMS, an HSM) sign the same cleartext `signInvoice` signs.
 */
export interface PendingSignature {
  readonly cleartext: string;
  finish(signature: string): Invoice;
}

/**
 * Prepares appending a signature by `who` in `role` (see `signInvoice`). Throws
 * `duplicate_signature` when this key already signed the invoice.
 */
export function prepareInvoiceSignature(
  inv: Invoice,
  role: SignatureRole,
  who: SignerIdentity,
  at: number = nowSeconds(),
): PendingSignature {
  if (signedWith(inv.signature, who.publicKey)) {
    throw new BindleError(
      'duplicate_signature',
      `key ${JSON.stringify(who.label)} has already signed ${inv.bindle.name}/${inv.bindle.version}; a key may sign an invoice only once`,
    );
  }
  const when = checkAt(at);
  return {
    cleartext: invoiceCleartext(inv, who.label, role),
    finish(signature) {
      const out = structuredClone(inv);
      out.signature = [...(out.signature ?? []), { by: who.label, signature, key: who.publicKey, role, at: when }];
      return out;
    },
  };
}

/**
 * Prepares yanking (see `yankInvoice`); undefined when the invoice is already yanked. Throws
 * `no_suitable_key` when `who` does not have the host role.
 */
export function prepareYank(
  inv: Invoice,
  who: SignerIdentity,
  reason = '',
  at: number = nowSeconds(),
): PendingSignature | undefined {
  if (inv.yanked === true) return undefined;
  if (!who.roles.includes('host')) {
    throw new BindleError('no_suitable_key', `key ${JSON.stringify(who.label)} does not have the host role needed to yank`);
  }
  const when = checkAt(at);
  return {
    cleartext: yankCleartext(inv, who.label, when, reason),
    finish(signature) {
      const out = structuredClone(inv);
      out.yanked = true;
      out.yankedSignature = [...(out.yankedSignature ?? []), { by: who.label, signature, key: who.publicKey, role: 'host', at: when }];
      return out;
    },
  };
}

function identityOf(key: SecretKeyEntry): SignerIdentity {
  return { label: key.label, publicKey: publicKeyOf(key), roles: key.roles };
}

/**
 * Returns a copy of `inv` with a signature by `key` in `role` appended: `by` = the key's label,
 * `key` = its base64 public key, `at` = `at` (default now), signed over the reference
 * cleartext. Throws `duplicate_signature` when this key already signed the invoice, and
 * `corrupt_key` when the keypair is unusable. The key's own roles are not consulted; choose the
 * key with `SecretKeyStore.firstMatching`.
 */
export function signInvoice(inv: Invoice, role: SignatureRole, key: SecretKeyEntry, at: number = nowSeconds()): Invoice {
  const pending = prepareInvoiceSignature(inv, role, identityOf(key), at);
  return pending.finish(signText(key, pending.cleartext));
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
  const pending = prepareYank(inv, identityOf(hostKey), reason, at);
  return pending === undefined ? inv : pending.finish(signText(hostKey, pending.cleartext));
}
