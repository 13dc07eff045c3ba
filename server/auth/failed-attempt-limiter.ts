/**
 * Limits failed authentication attempts per client address: after `maxFailures` failures within
 * `windowMs`, that address's requests with credentials are refused with too_many_requests (429)
 * until the window ends, without checking the credentials (so a flood of guesses costs no bcrypt).
 * Attempts still being checked count as failures until they end, so concurrent guesses get no
 * more checks than sequential ones: an attempt that would pass the limit if they all failed
 * waits for one of them to end (a client sending many requests at once with good credentials
 * waits, it is not refused), up to MAX_WAITING_ATTEMPTS per address.
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

/** Attempts from one address that may wait for a check to end; one more is refused at once. */
export const MAX_WAITING_ATTEMPTS = 256;

/**
 * Wraps an authenticator. Contract additions to Authenticator's: a request with credentials from
 * an address with `maxFailures` failures in the window throws TooManyRequestsError without
 * reaching the wrapped authenticator; one from an address whose failures plus attempts in flight
 * reach `maxFailures` waits until an attempt ends and is then decided the same way (so at most
 * `maxFailures` failed checks per address and window, however many arrive at once), or throws
 * TooManyRequestsError when MAX_WAITING_ATTEMPTS already wait; every `unauthenticated` failure
 * counts against the address; a success does not reset the count (a guesser who knows one
 * password gains no extra guesses). Without a client address nothing is limited.
 */
export class FailedAttemptLimiter implements Authenticator {
  readonly #inner: Authenticator;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxClients: number;
  readonly #now: () => number;
  /** Address → failures in its current window and when that window ends. Insertion-ordered. */
  readonly #clients = new Map<string, { failures: number; resetAt: number }>();
  /** Address → attempts being checked now, and the attempts waiting for one of them to end; an address leaves when none is left. */
  readonly #inFlight = new Map<string, { checking: number; waiting: Array<() => void> }>();

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
    const { address } = client;
    const slot = await this.#takeSlot(address);
    try {
      return await this.#inner.authenticate(authorizationHeader, client);
    } catch (err) {
      if (err instanceof BindleError && err.code === 'unauthenticated') this.#fail(address);
      throw err;
    } finally {
      this.#release(address, slot);
    }
  }

  /**
   * Waits until an attempt from `address` may be checked (see the class contract) and counts it
   * as in flight; TooManyRequestsError when the address may not try now.
   */
  async #takeSlot(address: string): Promise<{ checking: number; waiting: Array<() => void> }> {
    for (;;) {
      const entry = this.#current(address);
      const failures = entry?.failures ?? 0;
      if (entry !== undefined && failures >= this.#maxFailures) {
        // The attempts waiting behind this one are refused too: each wakes the next as it is.
        this.#inFlight.get(address)?.waiting.shift()?.();
        const seconds = Math.max(1, Math.ceil((entry.resetAt - this.#now()) / 1000));
        throw new TooManyRequestsError(`too many failed authentication attempts from ${address}; try again in ${seconds} s`, seconds);
      }
      let slot = this.#inFlight.get(address);
      if (slot === undefined) {
        slot = { checking: 0, waiting: [] };
        this.#inFlight.set(address, slot);
      }
      if (failures + slot.checking < this.#maxFailures) {
        slot.checking += 1;
        return slot;
      }
      if (slot.waiting.length >= MAX_WAITING_ATTEMPTS) {
        throw new TooManyRequestsError(`too many authentication attempts from ${address} at once; try again in 1 s`, 1);
      }
      const waiting = slot.waiting;
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  }

  /** Ends one attempt in flight from the address and lets one waiting attempt try. */
  #release(address: string, slot: { checking: number; waiting: Array<() => void> }): void {
    slot.checking -= 1;
    const next = slot.waiting.shift();
    if (next !== undefined) next();
    else if (slot.checking === 0) this.#inFlight.delete(address);
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
