/**
 * The auth seam's public surface, and buildAuth: the one place that turns the server
 * configuration into the authenticator and authorizer the HTTP app uses.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import type { ServerConfig } from '../config/server-config.js';
import { AlwaysAuthorizer, AnonymousGetAuthorizer } from './authorizers.js';
import { ChainAuthenticator } from './chain-authenticator.js';
import { HtpasswdAuthenticator } from './htpasswd-authenticator.js';
import { NoAuthenticator } from './no-authenticator.js';
import { OidcAuthenticator } from './oidc-authenticator.js';
import { StaticTokenAuthenticator } from './static-token-authenticator.js';
import type { Authenticator, Authorizer, SchemeAuthenticator } from './types.js';

export type { Action, Authenticator, AuthScheme, Authorizer, Principal, SchemeAuthenticator } from './types.js';
export { actionForMethod } from './types.js';
export { parseAuthorization, decodeBasic, credentialsFor, type ParsedAuthorization } from './authorization-header.js';
export { AlwaysAuthorizer, AnonymousGetAuthorizer } from './authorizers.js';
export { ChainAuthenticator } from './chain-authenticator.js';
export { HtpasswdAuthenticator, type HtpasswdOptions } from './htpasswd-authenticator.js';
export { NoAuthenticator } from './no-authenticator.js';
export { OidcAuthenticator, type OidcDiscovery, type OidcOptions, type OidcSettings } from './oidc-authenticator.js';
export { StaticTokenAuthenticator, tokenDigest } from './static-token-authenticator.js';

/** What the entry point wires into the app; `oidc` is there when OIDC is configured (for /login). */
export interface AuthSetup {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly oidc?: OidcAuthenticator;
}

/**
 * Builds authentication from the configuration: with `unauthenticated`, NoAuthenticator and
 * AlwaysAuthorizer; otherwise a ChainAuthenticator over htpasswd, static tokens and OIDC (loading
 * their files now, so a bad file fails the start with invalid_config) and AnonymousGetAuthorizer.
 */
export async function buildAuth(config: ServerConfig): Promise<AuthSetup> {
  if (config.unauthenticated) return { authenticator: new NoAuthenticator(), authorizer: new AlwaysAuthorizer() };
  const chain: SchemeAuthenticator[] = [];
  if (config.htpasswdFile !== undefined) chain.push(await HtpasswdAuthenticator.load(config.htpasswdFile));
  if (config.tokenFile !== undefined) chain.push(await StaticTokenAuthenticator.load(config.tokenFile));
  const oidc = config.oidc === undefined ? undefined : await OidcAuthenticator.create(config.oidc);
  if (oidc !== undefined) chain.push(oidc);
  if (chain.length === 0) {
    throw new BindleError('invalid_config', 'authentication is on but no authenticator is configured (htpasswd file, token file or OIDC)');
  }
  return {
    authenticator: new ChainAuthenticator(chain),
    authorizer: new AnonymousGetAuthorizer(),
    ...(oidc === undefined ? {} : { oidc }),
  };
}
