/**
 * The Authorizer contract, run against every implementation: for each (principal, action) it
 * either allows (returns undefined) or refuses with forbidden (403), for an anonymous caller
 * (PROTOCOL.md §3: bad credentials are the authenticator's 401) as for a known principal. A principal is never allowed less
 * than an anonymous caller, and the answer does not change between calls.
 */
import type { Test } from 'tap';
import { isBindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authorizer, Principal } from '../../server/auth/index.js';

/** What the implementation allows: anonymous and authenticated callers, per action. */
export interface AuthorizerExpectations {
  anonymous: Record<Action, boolean>;
  principal: Record<Action, boolean>;
}

const ACTIONS: readonly Action[] = ['read', 'write'];
const PRINCIPALS: readonly Principal[] = [
  { id: 'admin', kind: 'basic' },
  { id: 'ci', kind: 'token' },
  { id: 'alice@https://issuer.test', kind: 'oidc' },
];

type Outcome = 'allowed' | 'unauthenticated' | 'forbidden';

function outcome(authorizer: Authorizer, principal: Principal | undefined, action: Action): Outcome {
  try {
    const result: unknown = authorizer.authorize(principal, action);
    if (result !== undefined) throw new Error(`authorize returned ${JSON.stringify(result)} instead of nothing`);
    return 'allowed';
  } catch (err) {
    if (isBindleError(err, 'unauthenticated') && err.status === 401) return 'unauthenticated';
    if (isBindleError(err, 'forbidden') && err.status === 403) return 'forbidden';
    throw err;
  }
}

export function authorizerContract(t: Test, name: string, authorizer: Authorizer, expected: AuthorizerExpectations): void {
  t.test(`Authorizer contract: ${name}`, async (t) => {
    for (const action of ACTIONS) {
      t.equal(
        outcome(authorizer, undefined, action),
        expected.anonymous[action] ? 'allowed' : 'forbidden',
        `anonymous ${action}: allowed, or 403`,
      );
      for (const principal of PRINCIPALS) {
        t.equal(
          outcome(authorizer, principal, action),
          expected.principal[action] ? 'allowed' : 'forbidden',
          `${principal.kind} principal ${action}: allowed, or 403`,
        );
      }
    }

    t.test('a principal is never allowed less than an anonymous caller', async (t) => {
      for (const action of ACTIONS) {
        if (outcome(authorizer, undefined, action) !== 'allowed') continue;
        for (const principal of PRINCIPALS) t.equal(outcome(authorizer, principal, action), 'allowed', `${principal.kind} ${action}`);
      }
    });

    t.test('answers are stable across calls', async (t) => {
      for (const action of ACTIONS) {
        for (const principal of [undefined, ...PRINCIPALS]) {
          const first = outcome(authorizer, principal, action);
          t.equal(outcome(authorizer, principal, action), first, `${principal?.kind ?? 'anonymous'} ${action}`);
        }
      }
    });
  });
}
