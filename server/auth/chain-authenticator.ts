/**
 * Combines the configured authenticators: a header goes to those of its scheme (Basic to
 * htpasswd; Bearer to static tokens, then OIDC), in the order given; the first to accept wins.
 */
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { parseAuthorization, schemeName } from './authorization-header.js';
import type { Authenticator, AuthScheme, Principal, SchemeAuthenticator } from './types.js';

export class ChainAuthenticator implements Authenticator {
  readonly #authenticators: readonly SchemeAuthenticator[];

  /** `authenticators` are tried in this order within a scheme; there must be at least one. */
  constructor(authenticators: readonly SchemeAuthenticator[]) {
    if (authenticators.length === 0) throw new BindleError('invalid_config', 'ChainAuthenticator needs at least one authenticator');
    this.#authenticators = [...authenticators];
  }

  /** The schemes accepted, in display form (for messages and WWW-Authenticate). */
  get schemes(): string[] {
    return [...new Set(this.#authenticators.map((a) => a.scheme))].map((s: AuthScheme) => schemeName(s));
  }

  async authenticate(authorizationHeader: string | undefined): Promise<Principal | undefined> {
    const parsed = parseAuthorization(authorizationHeader);
    if (parsed === undefined) return undefined;
    const candidates = this.#authenticators.filter((a) => a.scheme === parsed.scheme);
    if (candidates.length === 0) {
      throw new BindleError(
        'unauthenticated',
        `unsupported authorization scheme "${parsed.schemeAsSent}"; this server accepts ${this.schemes.join(' or ')}`,
      );
    }
    const failures: BindleError[] = [];
    for (const candidate of candidates) {
      try {
        const principal = await candidate.authenticate(authorizationHeader);
        if (principal !== undefined) return principal;
      } catch (err) {
        // Only a rejection passes the header on; anything else (e.g. an unreachable issuer) is final.
        if (!isBindleError(err, 'unauthenticated')) throw err;
        failures.push(err);
      }
    }
    const [only] = failures;
    if (failures.length === 1 && only !== undefined) throw only;
    throw new BindleError(
      'unauthenticated',
      `${parsed.schemeAsSent} credentials were not accepted: ${failures.map((f) => f.message).join('; ')}`,
    );
  }
}
