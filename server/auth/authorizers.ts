/**
 * The simple authorizers: AlwaysAuthorizer for a server without authentication, and
 * AnonymousGetAuthorizer (with authentication but no ACL): anyone may read, writes need a
 * principal. Authorization by name is AclAuthorizer (acl-authorizer.ts).
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authorizer, Principal } from './types.js';

/** Allows everything, to everyone (`--unauthenticated`). */
export class AlwaysAuthorizer implements Authorizer {
  authorize(_principal: Principal | undefined, _action: Action, _name?: string): void {
    // Nothing is refused.
  }
}

/**
 * Reads are allowed to anyone; writes (push and yank, on any name) to any authenticated
 * principal — the default when no ACL is configured. An anonymous write is
 * `forbidden` (403), as the reference server and PROTOCOL.md §3 answer it; bad credentials are
 * the authenticator's 401. `admin` (hard delete) needs an admin grant, which only an ACL gives:
 * it is forbidden to everyone here.
 */
export class AnonymousGetAuthorizer implements Authorizer {
  authorize(principal: Principal | undefined, action: Action, _name?: string): void {
    if (action === 'read') return;
    if (principal === undefined) throw anonymousWrite();
    if (action === 'admin') {
      throw new BindleError('forbidden', `${principal.id} lacks the admin grant: hard deletes need an ACL (--acl-file) granting admin`);
    }
  }
}

/** The refusal of a write without credentials, the same from every authorizer. */
export function anonymousWrite(): BindleError {
  return new BindleError('forbidden', 'anonymous writes are not allowed: this request changes data and needs credentials (send an Authorization header)');
}
