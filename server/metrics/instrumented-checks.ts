/**
 * Decorators around the verifier, authenticator and authorizer seams that count their refusals
 * into ServerMetrics by reason (the error code): verification failures, refused credentials and
 * refused actions. They change no behaviour: every call goes to the wrapped seam, whose result
 * or error is passed on unchanged. Wrapped where implementations are chosen (server-runtime.ts).
 */
import type { Invoice } from '../../schema/index.js';
import type { Keyring } from '../../core/signing/keyring.js';
import type { VerificationStrategy } from '../../core/signing/verification.js';
import type { InvoiceVerifier } from '../../core/signing/verifier.js';
import type { Action, Authenticator, Authorizer, ClientInfo, Principal } from '../auth/types.js';
import { failureCode, type ServerMetrics } from './server-metrics.js';

/** Runs `check`; when it throws, counts the error's code with `count` and rethrows it. */
function counting<T>(check: () => T, count: (reason: string) => void): T {
  try {
    return check();
  } catch (err) {
    count(failureCode(err));
    throw err;
  }
}

export class InstrumentedVerifier implements InvoiceVerifier {
  readonly #inner: InvoiceVerifier;
  readonly #count: (reason: string) => void;

  constructor(inner: InvoiceVerifier, metrics: ServerMetrics) {
    this.#inner = inner;
    this.#count = (reason) => metrics.verificationFailures.inc({ reason });
  }

  get strategy(): VerificationStrategy {
    return this.#inner.strategy;
  }

  verify(inv: Invoice): void {
    counting(() => this.#inner.verify(inv), this.#count);
  }

  trustedKeys(): Keyring {
    return this.#inner.trustedKeys();
  }
}

export class InstrumentedAuthenticator implements Authenticator {
  readonly #inner: Authenticator;
  readonly #count: (reason: string) => void;

  constructor(inner: Authenticator, metrics: ServerMetrics) {
    this.#inner = inner;
    this.#count = (reason) => metrics.authFailures.inc({ stage: 'authenticate', reason });
  }

  authenticate(authorizationHeader: string | undefined, client?: ClientInfo): Promise<Principal | undefined> {
    return this.#inner.authenticate(authorizationHeader, client).catch((err: unknown) => {
      this.#count(failureCode(err));
      throw err;
    });
  }
}

export class InstrumentedAuthorizer implements Authorizer {
  readonly #inner: Authorizer;
  readonly #count: (reason: string) => void;

  constructor(inner: Authorizer, metrics: ServerMetrics) {
    this.#inner = inner;
    this.#count = (reason) => metrics.authFailures.inc({ stage: 'authorize', reason });
  }

  authorize(principal: Principal | undefined, action: Action, name?: string): void {
    counting(() => this.#inner.authorize(principal, action, name), this.#count);
  }
}
