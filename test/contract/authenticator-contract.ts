/**
 * The Authenticator contract, run against every implementation that verifies credentials:
 * no header → anonymous (undefined); good credentials → their principal, every time, also
 * concurrently and with the scheme in any case; a present but bad credential (wrong secret,
 * unknown user, malformed, wrong scheme, tampered) → BindleError('unauthenticated'), never undefined.
 */
import type { Test } from 'tap';
import type { Authenticator, Principal } from '../../server/auth/index.js';

export interface AuthenticatorFixture {
  authenticator: Authenticator;
  /** Headers that must authenticate, each with the principal it yields. */
  good: { header: string; principal: Principal }[];
  /** Implementation-specific headers that must be rejected as unauthenticated. */
  bad: { label: string; header: string }[];
}

/** Headers no authenticator may accept. */
const ALWAYS_BAD: { label: string; header: string }[] = [
  { label: 'unsupported scheme', header: 'Negotiate YWRtaW46c3cwcmRmMXNo' },
  { label: 'digest scheme', header: 'Digest username="admin", realm="bindle"' },
  { label: 'scheme without credentials', header: 'Basic' },
  { label: 'bearer without credentials', header: 'Bearer' },
  { label: 'no scheme', header: '"quoted"' },
  { label: 'single word', header: 'garbage' },
];

function withSchemeCase(header: string, upper: boolean): string {
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space);
  return `${upper ? scheme.toUpperCase() : scheme.toLowerCase()}${header.slice(space)}`;
}

export function authenticatorContract(t: Test, name: string, setup: (t: Test) => Promise<AuthenticatorFixture>): void {
  t.test(`Authenticator contract: ${name}`, async (t) => {
    const { authenticator, good, bad } = await setup(t);
    t.ok(good.length > 0, 'the fixture has good credentials');

    t.test('no Authorization header is anonymous', async (t) => {
      t.equal(await authenticator.authenticate(undefined), undefined);
      t.equal(await authenticator.authenticate(''), undefined, 'an empty header carries no credentials');
      t.equal(await authenticator.authenticate('   '), undefined, 'a blank header carries no credentials');
      t.equal(await authenticator.authenticate('Basic Og=='), undefined, 'nor Basic with an empty user name and password (OCI clients without credentials)');
      t.equal(await authenticator.authenticate('basic  Og== '), undefined, 'in any case and spacing');
    });

    t.test('good credentials yield their principal, repeatably', async (t) => {
      for (const { header, principal } of good) {
        t.same(await authenticator.authenticate(header), principal, header);
        t.same(await authenticator.authenticate(header), principal, `${header} (again)`);
        t.ok(principal.id.length > 0, 'principal ids are not empty');
        t.ok(['basic', 'token', 'oidc'].includes(principal.kind));
      }
    });

    t.test('the scheme is case-insensitive', async (t) => {
      for (const { header, principal } of good) {
        t.same(await authenticator.authenticate(withSchemeCase(header, true)), principal, 'upper case');
        t.same(await authenticator.authenticate(withSchemeCase(header, false)), principal, 'lower case');
      }
    });

    t.test('concurrent requests each get their own answer', async (t) => {
      const headers = [...good.map((g) => g.header), ...bad.map((b) => b.header)];
      const results = await Promise.allSettled(headers.map((h) => authenticator.authenticate(h)));
      results.forEach((result, i) => {
        if (i < good.length) t.same(result.status === 'fulfilled' ? result.value : result.reason, good[i]?.principal);
        else t.equal(result.status, 'rejected', bad[i - good.length]?.label ?? 'bad header');
      });
    });

    t.test('bad credentials are unauthenticated, never anonymous', async (t) => {
      const tampered = good.map((g) => ({ label: `tampered: ${g.header}`, header: `${g.header}x` }));
      for (const { label, header } of [...bad, ...ALWAYS_BAD, ...tampered]) {
        await t.rejects(authenticator.authenticate(header), { name: 'BindleError', code: 'unauthenticated', status: 401 }, label);
      }
    });
  });
}
