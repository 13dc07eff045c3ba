/**
 * The authenticator for a server without authentication (`--unauthenticated`): every request
 * is anonymous, and an Authorization header is ignored rather than checked.
 */
import type { Authenticator, Principal } from './types.js';

export class NoAuthenticator implements Authenticator {
  authenticate(_authorizationHeader: string | undefined): Promise<Principal | undefined> {
    return Promise.resolve(undefined);
  }
}
