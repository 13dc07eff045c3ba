/**
 * The Authorizer contract, run against every implementation: for each case (principal or
 * anonymous, action, bindle name) it either allows (returns undefined) or refuses with forbidden
 * (403) — for an anonymous caller too (PROTOCOL.md §3: bad credentials are the authenticator's
 * 401) — and a refusal of a known principal names the missing grant. Across every principal,
 * action and name: reads are open to everyone, a principal is never allowed less than an
 * anonymous caller, an action allowed on some name is allowed when the name is not known yet
 * (undefined), and the answer does not change between calls.
 */
import type { Test } from 'tap';
import { isBindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authorizer, Principal } from '../../server/auth/index.js';

/** One expectation: `who` (undefined = anonymous) doing `action` on `name`. */
export interface AuthorizerCase {
  readonly who: Principal | undefined;
  readonly action: Action;
  readonly name?: string;
  readonly allowed: boolean;
}

export interface AuthorizerFixture {
  readonly authorizer: Authorizer;
  /** The implementation's own expectations (prefixes, groups, defaults …). */
  readonly cases: readonly AuthorizerCase[];
}

const ACTIONS: readonly Action[] = ['read', 'push', 'yank'];
const NAMES: readonly (string | undefined)[] = [undefined, 'example.com/app', 'example.com/team/tool', 'other.org/x', 'example.community/y'];
const PRINCIPALS: readonly Principal[] = [
  { id: 'admin', kind: 'basic' },
  { id: 'ci', kind: 'token' },
  { id: 'alice@https://issuer.test', kind: 'oidc' },
];

type Outcome = 'allowed' | 'unauthenticated' | 'forbidden';

function outcome(authorizer: Authorizer, principal: Principal | undefined, action: Action, name?: string): { result: Outcome; message?: string } {
  try {
    const result: unknown = authorizer.authorize(principal, action, name);
    if (result !== undefined) throw new Error(`authorize returned ${JSON.stringify(result)} instead of nothing`);
    return { result: 'allowed' };
  } catch (err) {
    if (isBindleError(err, 'unauthenticated') && err.status === 401) return { result: 'unauthenticated', message: err.message };
    if (isBindleError(err, 'forbidden') && err.status === 403) return { result: 'forbidden', message: err.message };
    throw err;
  }
}

function label(who: Principal | undefined, action: Action, name: string | undefined): string {
  return `${who?.id ?? 'anonymous'} ${action} ${name ?? '(name not known yet)'}`;
}

export function authorizerContract(t: Test, title: string, setup: () => Promise<AuthorizerFixture>): void {
  t.test(`Authorizer contract: ${title}`, async (t) => {
    const { authorizer, cases } = await setup();

    t.test("the implementation's cases", async (t) => {
      for (const c of cases) {
        const { result, message } = outcome(authorizer, c.who, c.action, c.name);
        t.equal(result, c.allowed ? 'allowed' : 'forbidden', `${label(c.who, c.action, c.name)}: allowed, or 403`);
        if (!c.allowed && c.who !== undefined) t.match(message, c.action, 'the refusal names the missing grant');
      }
    });

    const everyone = [undefined, ...PRINCIPALS, ...cases.flatMap((c) => (c.who === undefined ? [] : [c.who]))];
    const names = [...NAMES, ...cases.map((c) => c.name)];

    t.test('reads are open to everyone', async (t) => {
      for (const who of everyone) for (const name of names) t.equal(outcome(authorizer, who, 'read', name).result, 'allowed', label(who, 'read', name));
    });

    t.test('a principal is never allowed less than an anonymous caller', async (t) => {
      for (const action of ACTIONS) {
        for (const name of names) {
          if (outcome(authorizer, undefined, action, name).result !== 'allowed') continue;
          for (const who of everyone) t.equal(outcome(authorizer, who, action, name).result, 'allowed', label(who, action, name));
        }
      }
    });

    t.test('what is allowed on some name is allowed before the name is known', async (t) => {
      for (const who of everyone) {
        for (const action of ACTIONS) {
          if (!names.some((n) => n !== undefined && outcome(authorizer, who, action, n).result === 'allowed')) continue;
          t.equal(outcome(authorizer, who, action, undefined).result, 'allowed', label(who, action, undefined));
        }
      }
    });

    t.test('answers are stable across calls', async (t) => {
      for (const action of ACTIONS) {
        for (const who of everyone) {
          for (const name of names) {
            const first = outcome(authorizer, who, action, name).result;
            t.equal(outcome(authorizer, who, action, name).result, first, label(who, action, name));
          }
        }
      }
    });
  });
}
