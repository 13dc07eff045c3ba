/**
 * The trust store seam: where the set of public keys trusted to sign invoices comes from, read
 * afresh for every verification so that a change takes effect without a restart. A keyring file
 * (FileTrustStore, reloaded on change) implements it today; a database table could.
 * `TrustStoreVerifier` is the InvoiceVerifier over a trust store.
 */
import type { Invoice } from '../../schema/index.js';
import type { Keyring } from './keyring.js';
import { verifyInvoice, type VerificationStrategy } from './verification.js';
import type { InvoiceVerifier } from './verifier.js';

/**
 * The keys trusted now.
 *
 * Contracts:
 * - `current()` is cheap (it is called for every verification) and never fails; it returns a
 *   snapshot that is never changed afterwards (a change produces a new Keyring object).
 * - A failed update (unreadable or invalid source) keeps the previous snapshot.
 */
export interface TrustStore {
  current(): Keyring;
}

/** A trust store that never changes. */
export class StaticTrustStore implements TrustStore {
  readonly #keyring: Keyring;

  constructor(keyring: Keyring) {
    this.#keyring = keyring;
  }

  current(): Keyring {
    return this.#keyring;
  }
}

/**
 * Verifies invoices against a trust store's current keys (plus `alsoTrusted`, e.g. the host's
 * own keys) with a fixed strategy.
 */
export class TrustStoreVerifier implements InvoiceVerifier {
  readonly strategy: VerificationStrategy;
  readonly #trust: TrustStore;
  readonly #alsoTrusted: Keyring | undefined;
  #cached: { from: Keyring; merged: Keyring } | undefined;

  constructor(trust: TrustStore, strategy: VerificationStrategy, alsoTrusted?: Keyring) {
    this.#trust = trust;
    this.strategy = strategy;
    this.#alsoTrusted = alsoTrusted;
  }

  /** The keyring verification uses now. */
  keyring(): Keyring {
    const from = this.#trust.current();
    if (this.#alsoTrusted === undefined) return from;
    if (this.#cached?.from !== from) this.#cached = { from, merged: from.merge(this.#alsoTrusted) };
    return this.#cached.merged;
  }

  verify(inv: Invoice): void {
    verifyInvoice(inv, this.keyring(), this.strategy);
  }

  trustedKeys(): Keyring {
    return this.keyring();
  }
}
