/**
 * The authorizers: AlwaysAuthorizer for a server without authentication, and
 * AnonymousGetAuthorizer (the default with authentication): anyone may read, writes need a principal.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authorizer, Principal } from './types.js';

/** Allows everything, to everyone (`--unauthenticated`). */
export class AlwaysAuthorizer implements Authorizer {
  authorize(_principal: Principal | undefined, _action: Action): void {
    // Nothing is refused.
  }
}

/**
 * Reads are allowed to anyone; writes to any authenticated principal. An anonymous write is
 * `forbidden` (403), as the reference server and PROTOCOL.md §3 answer it; bad credentials are
 * the authenticator's 401.
 */
export class AnonymousGetAuthorizer implements Authorizer {
  authorize(principal: Principal | undefined, action: Action): void {
    if (action === 'read' || principal !== undefined) return;
    throw new BindleError('forbidden', 'anonymous writes are not allowed: this request changes data and needs credentials (send an Authorization header)');
  }
}
