/**
 * How each signature on an invoice stands against a keyring, one by one — for showing people
 * (the server's web UI), not for deciding trust: that is `verifyInvoice` with a strategy. The
 * checks are those of verification.ts (`verifySignature`, `verifyYankSignatures`), applied to a
 * single signature at a time.
 */
import type { Invoice, Signature } from '../../schema/index.js';
import { isBindleError } from '../errors/bindle-error.js';
import type { Keyring } from './keyring.js';
import { verifySignature, verifyYankSignatures } from './verification.js';

/**
 * One signature's standing:
 * - `trusted`: its cryptography verifies and its key is in the keyring (`keyLabel` is that
 *   entry's label; for a yank signature, the key must be a host key of the keyring);
 * - `unknown_key`: its cryptography verifies but its key is not (for a yank: not as a host key);
 * - `invalid`: it does not verify, or its key or signature cannot be decoded (`problem` says how).
 */
export type SignatureStanding =
  | { readonly signature: Signature; readonly status: 'trusted'; readonly keyLabel: string }
  | { readonly signature: Signature; readonly status: 'unknown_key' }
  | { readonly signature: Signature; readonly status: 'invalid'; readonly problem: string };

/** The standing of every `[[signature]]` and every `[[yankedSignature]]` of an invoice, in order. */
export interface SignatureStandings {
  readonly signatures: readonly SignatureStanding[];
  readonly yankSignatures: readonly SignatureStanding[];
}

/** Runs `check`; a BindleError it throws becomes its code and message, anything else propagates. */
function failureOf(check: () => void): { code: string; message: string } | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (!isBindleError(err)) throw err;
    return { code: err.code, message: err.message };
  }
}

function signatureStanding(inv: Invoice, signature: Signature, keyring: Keyring): SignatureStanding {
  const failure = failureOf(() => verifySignature(inv, signature));
  if (failure !== undefined) return { signature, status: 'invalid', problem: failure.message };
  const entry = keyring.entryFor(signature.key);
  return entry === undefined ? { signature, status: 'unknown_key' } : { signature, status: 'trusted', keyLabel: entry.label };
}

function yankStanding(inv: Invoice, signature: Signature, keyring: Keyring): SignatureStanding {
  const failure = failureOf(() => verifyYankSignatures({ ...inv, yankedSignature: [signature] }, keyring));
  if (failure === undefined) {
    return { signature, status: 'trusted', keyLabel: keyring.entryFor(signature.key)?.label ?? '' };
  }
  if (failure.code === 'unknown_signing_key') return { signature, status: 'unknown_key' };
  return { signature, status: 'invalid', problem: failure.message };
}

/** Each signature and yank signature of `inv`, checked on its own against `keyring`. */
export function signatureStandings(inv: Invoice, keyring: Keyring): SignatureStandings {
  return {
    signatures: (inv.signature ?? []).map((s) => signatureStanding(inv, s, keyring)),
    yankSignatures: (inv.yankedSignature ?? []).map((s) => yankStanding(inv, s, keyring)),
  };
}
