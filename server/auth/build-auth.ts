/**
 * buildAuth: the one place that turns the server configuration into the authenticator and
 * authorizer the HTTP app uses. The htpasswd (bcryptjs) and OIDC (jose) authenticators are
 * imported only when configured, so a start without them does not load those libraries.
 */
import type { FastifyBaseLogger } from 'fastify';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { ServerConfig } from '../config/server-config.js';
import { AclAuthorizer } from './acl-authorizer.js';
import { AlwaysAuthorizer, AnonymousGetAuthorizer } from './authorizers.js';
import { ChainAuthenticator } from './chain-authenticator.js';
import { FailedAttemptLimiter } from './failed-attempt-limiter.js';
import { NoAuthenticator } from './no-authenticator.js';
import type { HtpasswdAuthenticator } from './htpasswd-authenticator.js';
import type { OidcAuthenticator } from './oidc-authenticator.js';
import { StaticTokenAuthenticator } from './static-token-authenticator.js';
import type { Authenticator, Authorizer, SchemeAuthenticator } from './types.js';
import type { FileCheckOptions, ReloadFailureReporter } from './watched-file.js';

/**
 * What the entry point wires into the app; `oidc` is there when OIDC is configured (for /login),
 * `acl` when an ACL file is (the entry point reloads it on change and SIGHUP).
 */
export interface AuthSetup {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly oidc?: OidcAuthenticator;
  readonly acl?: AclAuthorizer;
  /** The htpasswd authenticator, when configured (the entry point exports its cache's hit rate). */
  readonly htpasswd?: HtpasswdAuthenticator;
}

/**
 * Builds authentication from the configuration: with `unauthenticated`, NoAuthenticator and
 * AlwaysAuthorizer; otherwise a ChainAuthenticator over htpasswd, static tokens and OIDC (loading
 * their files now, so a bad file fails the start with invalid_config), behind a
 * FailedAttemptLimiter (config.authFailureLimit: by default 10 failures per client address per
 * minute, then 429), and the AclAuthorizer
 * of `aclFile` (read now: a bad file, or a grant on a prefix no bindle name can start with, fails
 * the start with invalid_config naming the setting, e.g. `--acl-file: ACL file …: grant[0].on[1] …`)
 * or, without one, AnonymousGetAuthorizer.
 * The htpasswd and token files are re-read when they change, looked at as `fileChecks` says
 * (default: at most once a second, so a change is in force within a second); a changed file that
 * cannot be used is logged at error on `log` (without one, it is a process warning) and the last
 * good version stays in force.
 */
export async function buildAuth(config: ServerConfig, log?: Pick<FastifyBaseLogger, 'error'>, fileChecks?: FileCheckOptions): Promise<AuthSetup> {
  if (config.unauthenticated) return { authenticator: new NoAuthenticator(), authorizer: new AlwaysAuthorizer() };
  const reloadFailed = (what: string, file: string): ReloadFailureReporter | undefined =>
    log === undefined ? undefined : (err) => log.error({ file, err }, `${what} reload failed: the previous version stays in force`);
  const chain: SchemeAuthenticator[] = [];
  let htpasswd: HtpasswdAuthenticator | undefined;
  if (config.htpasswdFile !== undefined) {
    const { HtpasswdAuthenticator } = await import('./htpasswd-authenticator.js');
    const onReloadFailure = reloadFailed('htpasswd file', config.htpasswdFile);
    htpasswd = await HtpasswdAuthenticator.load(config.htpasswdFile, {
      ...(onReloadFailure === undefined ? {} : { onReloadFailure }),
      ...(fileChecks === undefined ? {} : { fileChecks }),
    });
    chain.push(htpasswd);
  }
  if (config.tokenFile !== undefined) chain.push(await StaticTokenAuthenticator.load(config.tokenFile, reloadFailed('token file', config.tokenFile), fileChecks));
  let oidc: OidcAuthenticator | undefined;
  if (config.oidc !== undefined) {
    const { OidcAuthenticator } = await import('./oidc-authenticator.js');
    oidc = await OidcAuthenticator.create(config.oidc);
    chain.push(oidc);
  }
  if (chain.length === 0) {
    throw new BindleError('invalid_config', 'authentication is on but no authenticator is configured (htpasswd file, token file or OIDC)');
  }
  const acl = config.aclFile === undefined ? undefined : await loadAcl(config.aclFile, config.sources.aclFile);
  return {
    authenticator: new FailedAttemptLimiter(new ChainAuthenticator(chain), config.authFailureLimit),
    authorizer: acl ?? new AnonymousGetAuthorizer(),
    ...(oidc === undefined ? {} : { oidc }),
    ...(acl === undefined ? {} : { acl }),
    ...(htpasswd === undefined ? {} : { htpasswd }),
  };
}

/** Loads the ACL file; an unusable one is invalid_config naming the setting that named it (`where`) first. */
async function loadAcl(path: string, where: string | undefined): Promise<AclAuthorizer> {
  try {
    return await AclAuthorizer.load(path);
  } catch (err) {
    if (where === undefined || !(err instanceof BindleError)) throw err;
    throw new BindleError(err.code, `${where}: ${err.message}`, { cause: err });
  }
}
