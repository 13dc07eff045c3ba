/**
 * The auth seam's public surface: the authenticator and authorizer contracts, their
 * implementations, and buildAuth. The server's start-up imports build-auth.ts directly, which
 * loads the htpasswd and OIDC implementations (and their libraries) only when configured.
 */
export type { Action, Authenticator, AuthScheme, Authorizer, ClientInfo, Principal, SchemeAuthenticator } from './types.js';
export { actionForMethod, actionForRequest } from './types.js';
export { parseAuthorization, decodeBasic, credentialsFor, type ParsedAuthorization } from './authorization-header.js';
export { AlwaysAuthorizer, AnonymousGetAuthorizer } from './authorizers.js';
export { AclAuthorizer, type Grant } from './acl-authorizer.js';
export { authorizeBindleName, registerRequestAuth } from './request-auth.js';
export { ChainAuthenticator } from './chain-authenticator.js';
export { FailedAttemptLimiter, MAX_WAITING_ATTEMPTS, TooManyRequestsError, type FailedAttemptLimits } from './failed-attempt-limiter.js';
export { HtpasswdAuthenticator, type HtpasswdOptions } from './htpasswd-authenticator.js';
export { NoAuthenticator } from './no-authenticator.js';
export { OidcAuthenticator, type OidcDiscovery, type OidcOptions, type OidcSettings } from './oidc-authenticator.js';
export { StaticTokenAuthenticator, tokenDigest } from './static-token-authenticator.js';
export { buildAuth, type AuthSetup } from './build-auth.js';
