/**
 * The authentication and authorization seams: what a principal is, the Authenticator that turns
 * an Authorization header into one, and the Authorizer that decides what it may do.
 */

/** Someone whose credentials were verified. `id` is stable for the same credentials. */
export interface Principal {
  readonly id: string;
  readonly kind: 'basic' | 'token' | 'oidc';
}

/** Who sent a request, as far as the connection tells. */
export interface ClientInfo {
  /** The peer's IP address. */
  readonly address: string;
}

/**
 * Turns request credentials into a principal.
 * Contract: no Authorization header (undefined, or blank) → undefined (anonymous); a present but
 * wrong, unknown or malformed credential, or an unsupported scheme → throws
 * BindleError('unauthenticated') (401), never undefined. Other errors (e.g. 'unavailable' when an
 * identity provider cannot be reached, 'too_many_requests' from FailedAttemptLimiter) propagate.
 * `client` is optional: an authenticator must not need it to decide.
 */
export interface Authenticator {
  authenticate(authorizationHeader: string | undefined, client?: ClientInfo): Promise<Principal | undefined>;
}

/** The HTTP authentication schemes we verify, lowercase. */
export type AuthScheme = 'basic' | 'bearer';

/** An authenticator for one scheme; ChainAuthenticator routes a header to those of its scheme. */
export interface SchemeAuthenticator extends Authenticator {
  readonly scheme: AuthScheme;
}

/** GET/HEAD are reads; POST/DELETE (and anything else) are writes. */
export type Action = 'read' | 'write';

/**
 * Decides whether a (possibly anonymous) principal may perform an action.
 * Contract: returns normally when allowed; throws BindleError('unauthenticated') (401) when the
 * principal is anonymous and credentials would be needed, BindleError('forbidden') (403) when the
 * principal is known but not allowed. A principal is never allowed less than an anonymous caller.
 */
export interface Authorizer {
  authorize(principal: Principal | undefined, action: Action): void;
}

/** The action an HTTP method performs. */
export function actionForMethod(method: string): Action {
  const upper = method.toUpperCase();
  return upper === 'GET' || upper === 'HEAD' ? 'read' : 'write';
}
