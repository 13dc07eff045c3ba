/**
 * The verifier seam: what the server and client call to decide whether an invoice is trusted,
 * and its keyring-backed implementation.
 */
import type { Invoice } from '../../schema/index.js';
import type { Keyring } from './keyring.js';
import { verifyInvoice, type VerificationStrategy } from './verification.js';

/** Decides whether an invoice's signatures make it trusted. */
export interface InvoiceVerifier {
  /** Throws a BindleError (see `verifyInvoice` for the codes) when the invoice is not trusted. */
  verify(inv: Invoice): void;
  /** The strategy this verifier applies. */
  readonly strategy: VerificationStrategy;
  /** The keys `verify` trusts now (a snapshot: later changes give a new Keyring). */
  trustedKeys(): Keyring;
}

/** Verifies invoices against a fixed keyring with a fixed strategy. */
export class KeyringVerifier implements InvoiceVerifier {
  readonly keyring: Keyring;
  readonly strategy: VerificationStrategy;

  constructor(keyring: Keyring, strategy: VerificationStrategy) {
    this.keyring = keyring;
    this.strategy = strategy;
  }

  verify(inv: Invoice): void {
    verifyInvoice(inv, this.keyring, this.strategy);
  }

  trustedKeys(): Keyring {
    return this.keyring;
  }
}
