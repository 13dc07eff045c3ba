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

/**
 * `Basic` with an empty user name and password (`:` in base64): what OCI clients that have no
 * credentials (containers/image: skopeo, podman, CRI-O) answer a 401 challenge with.
 */
const EMPTY_BASIC = /^basic[ \t]+Og==$/i;

/**
 * Whether an Authorization header carries credentials at all: present, not blank, and not Basic
 * with an empty user name and password. Without them a request is anonymous whatever the
 * authenticator (the Authenticator contract), so a caller may decide so without asking one.
 */
export function carriesCredentials(authorizationHeader: string | undefined): authorizationHeader is string {
  if (authorizationHeader === undefined) return false;
  const trimmed = authorizationHeader.trim();
  return trimmed !== '' && !EMPTY_BASIC.test(trimmed);
}

/** The HTTP authentication schemes we verify, lowercase. */
export type AuthScheme = 'basic' | 'bearer';

/** An authenticator for one scheme; ChainAuthenticator routes a header to those of its scheme. */
export interface SchemeAuthenticator extends Authenticator {
  readonly scheme: AuthScheme;
}

/**
 * What a request does: `read` (GET/HEAD), `push` (create an invoice, upload a parcel: POST, and
 * any other method), `yank` (DELETE) or `admin` (a hard delete, `DELETE ?hard=true`, and a
 * re-create of a hard-deleted bindle, `POST ?allow_deleted=true`).
 */
export type Action = 'read' | 'push' | 'yank' | 'admin';

/**
 * Decides whether a (possibly anonymous) principal may perform an action on a bindle name.
 * Contract: returns normally when allowed; throws BindleError('unauthenticated') (401) when the
 * principal is anonymous and credentials would be needed, BindleError('forbidden') (403) when the
 * principal is known but not allowed, with a message naming the missing grant. A principal is
 * never allowed less than an anonymous caller. `name` is the bindle name acted on; undefined
 * when it is not known yet (an invoice create, before its body is read): then the answer is
 * "allowed" if the principal could be allowed for some name, and the caller asks again with the
 * name before acting. Reads are decided without a name.
 */
export interface Authorizer {
  authorize(principal: Principal | undefined, action: Action, name?: string): void;
}

/** The query parameters that make a write an `admin` action (see Action) when set. */
export const ADMIN_PARAMS: readonly string[] = ['hard', 'allow_deleted'];

/** True for every value the routes read as true (`true`, `1`, empty, in any case), also among repeats. */
function setFlag(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(setFlag);
  return typeof value === 'string' && ['true', '1', ''].includes(value.toLowerCase());
}

/** The action a request performs: its method's, or `admin` when a write sets one of ADMIN_PARAMS. */
export function actionForRequest(method: string, query: unknown): Action {
  const action = actionForMethod(method);
  if (action === 'read' || typeof query !== 'object' || query === null) return action;
  const params = query as Record<string, unknown>;
  return ADMIN_PARAMS.some((name) => setFlag(params[name])) ? 'admin' : action;
}

/** The action an HTTP method performs. */
export function actionForMethod(method: string): Action {
  // Node's parser hands over the standard methods in upper case: no copy for them.
  if (method === 'GET' || method === 'HEAD') return 'read';
  const upper = method.toUpperCase();
  if (upper === 'GET' || upper === 'HEAD') return 'read';
  return upper === 'DELETE' ? 'yank' : 'push';
}
