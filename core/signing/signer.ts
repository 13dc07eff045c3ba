/**
 * The signer seam: whatever holds a signing key (a local secret-key file today; a KMS or HSM
 * could implement it) signs invoices and yanks through this interface, and never has to hand
 * out its secret. `LocalSigner` is the implementation over a SecretKeyEntry.
 */
import type { Invoice, SecretKeyEntry, SignatureRole } from '../../schema/index.js';
import { publicKeyOf, signText } from './keys.js';
import { nowSeconds, prepareInvoiceSignature, prepareYank, type SignerIdentity } from './sign.js';

/**
 * Holds one signing key.
 *
 * Contracts:
 * - `publicKey` is the canonical base64 Ed25519 public key; `sign` returns the canonical base64
 *   Ed25519 signature over the UTF-8 bytes of `text` that verifies with it.
 * - `label` and `roles` are fixed for the signer's lifetime.
 * - `sign` fails with a BindleError (`corrupt_key`, `unavailable`), never with a bare error.
 */
export interface Signer extends SignerIdentity {
  sign(text: string): Promise<string>;
}

/** A Signer over a secret key held in this process (a reference-format secret-key entry). */
export class LocalSigner implements Signer {
  readonly label: string;
  readonly publicKey: string;
  readonly roles: readonly SignatureRole[];
  readonly #key: SecretKeyEntry;

  /** Throws `corrupt_key` when the keypair is unusable. */
  constructor(key: SecretKeyEntry) {
    this.#key = structuredClone(key);
    this.label = key.label;
    this.publicKey = publicKeyOf(key);
    this.roles = Object.freeze([...key.roles]);
  }

  sign(text: string): Promise<string> {
    return Promise.resolve(signText(this.#key, text));
  }
}

/** `signInvoice` through a Signer: a copy of `inv` with `signer`'s signature in `role` appended. */
export async function signInvoiceWith(inv: Invoice, role: SignatureRole, signer: Signer, at: number = nowSeconds()): Promise<Invoice> {
  const pending = prepareInvoiceSignature(inv, role, signer, at);
  return pending.finish(await signer.sign(pending.cleartext));
}

/** `yankInvoice` through a Signer (which needs the host role); an already yanked invoice is returned as is. */
export async function yankInvoiceWith(inv: Invoice, signer: Signer, reason = '', at: number = nowSeconds()): Promise<Invoice> {
  const pending = prepareYank(inv, signer, reason, at);
  return pending === undefined ? inv : pending.finish(await signer.sign(pending.cleartext));
}
