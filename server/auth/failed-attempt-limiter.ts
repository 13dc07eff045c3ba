/**
 * Limits failed authentication attempts per client address: after `maxFailures` failures within
 * `windowMs`, that address's requests with credentials are refused with too_many_requests (429)
 * until the window ends, without checking the credentials (so a flood of guesses costs no bcrypt).
 * Requests without credentials (anonymous reads) are never limited. Counts live in memory: a
 * restart forgets them, which costs an attacker nothing it could not get by waiting a window.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import { carriesCredentials, type Authenticator, type ClientInfo, type Principal } from './types.js';

export interface FailedAttemptLimits {
  /** Failures an address may have within a window before it is refused (default 10). */
  readonly maxFailures?: number;
  /** The window, in milliseconds, counted from an address's first failure (default 60 s). */
  readonly windowMs?: number;
  /** Most addresses tracked; the oldest window is forgotten first (default 10,000). */
  readonly maxClients?: number;
  /** Clock in milliseconds (default Date.now). */
  readonly now?: () => number;
}

/** A too_many_requests refusal, with the seconds after which the client may try again. */
export class TooManyRequestsError extends BindleError {
  override readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number) {
    super('too_many_requests', message, { retryAfterSeconds });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Wraps an authenticator. Contract additions to Authenticator's: a request with credentials from
 * an address that has failed too often throws TooManyRequestsError; every `unauthenticated`
 * failure counts against the address; a success does not reset the count (a guesser who knows
 * one password gains no extra guesses). Without a client address nothing is limited.
 */
export class FailedAttemptLimiter implements Authenticator {
  readonly #inner: Authenticator;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxClients: number;
  readonly #now: () => number;
  /** Address → failures in its current window and when that window ends. Insertion-ordered. */
  readonly #clients = new Map<string, { failures: number; resetAt: number }>();

  constructor(inner: Authenticator, limits: FailedAttemptLimits = {}) {
    this.#inner = inner;
    this.#maxFailures = limits.maxFailures ?? 10;
    this.#windowMs = limits.windowMs ?? 60_000;
    this.#maxClients = limits.maxClients ?? 10_000;
    this.#now = limits.now ?? Date.now;
  }

  async authenticate(authorizationHeader: string | undefined, client?: ClientInfo): Promise<Principal | undefined> {
    if (client === undefined || !carriesCredentials(authorizationHeader)) {
      return this.#inner.authenticate(authorizationHeader, client);
    }
    const entry = this.#current(client.address);
    if (entry !== undefined && entry.failures >= this.#maxFailures) {
      const seconds = Math.max(1, Math.ceil((entry.resetAt - this.#now()) / 1000));
      throw new TooManyRequestsError(
        `too many failed authentication attempts from ${client.address}; try again in ${seconds} s`,
        seconds,
      );
    }
    try {
      return await this.#inner.authenticate(authorizationHeader, client);
    } catch (err) {
      if (err instanceof BindleError && err.code === 'unauthenticated') this.#fail(client.address);
      throw err;
    }
  }

  /** The address's window, if one is open. */
  #current(address: string): { failures: number; resetAt: number } | undefined {
    const entry = this.#clients.get(address);
    if (entry === undefined) return undefined;
    if (entry.resetAt > this.#now()) return entry;
    this.#clients.delete(address);
    return undefined;
  }

  #fail(address: string): void {
    const entry = this.#current(address);
    if (entry !== undefined) {
      entry.failures += 1;
      return;
    }
    this.#clients.set(address, { failures: 1, resetAt: this.#now() + this.#windowMs });
    while (this.#clients.size > this.#maxClients) {
      const oldest = this.#clients.keys().next();
      if (oldest.done === true) break;
      this.#clients.delete(oldest.value);
    }
  }
}
