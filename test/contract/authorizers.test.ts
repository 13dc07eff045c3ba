import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { actionForMethod, actionForRequest, AclAuthorizer, AlwaysAuthorizer, AnonymousGetAuthorizer, type Action, type Principal } from '../../server/auth/index.js';
import { prefixProblem } from '../../server/auth/acl-authorizer.js';
import { authorizerContract, type AuthorizerCase } from './authorizer-contract.js';

const ALICE: Principal = { id: 'alice', kind: 'basic' };
const BOB: Principal = { id: 'bob', kind: 'basic' };
const CI: Principal = { id: 'ci', kind: 'token' };
const ROOT: Principal = { id: 'root@https://issuer.test', kind: 'oidc' };
const EVE: Principal = { id: 'eve', kind: 'basic' };

/** Every (who, action) on `name` allowed exactly when listed in `allowed`. */
function expect(name: string | undefined, who: Principal | undefined, allowed: readonly Action[]): AuthorizerCase[] {
  return (['push', 'yank', 'admin'] as const).map((action) => ({ who, action, name, allowed: allowed.includes(action) }));
}

authorizerContract(t, 'AlwaysAuthorizer', async () => ({
  authorizer: new AlwaysAuthorizer(),
  cases: [...expect('example.com/app', undefined, ['push', 'yank', 'admin']), ...expect('example.com/app', ALICE, ['push', 'yank', 'admin'])],
}));

authorizerContract(t, 'AnonymousGetAuthorizer', async () => ({
  authorizer: new AnonymousGetAuthorizer(),
  cases: [...expect('example.com/app', undefined, []), ...expect('example.com/app', ALICE, ['push', 'yank']), ...expect(undefined, ALICE, ['push', 'yank'])],
}));

const ACL = `
[groups]
release = ["ci", "bob"]
admins = ["root@https://issuer.test"]

[[grant]]
to = ["alice"]
allow = ["push"]
on = ["example.com/"]

[[grant]]
to = ["group:release"]
allow = ["push", "yank"]
on = ["example.com/team/", "other.org/"]

[[grant]]
to = ["group:admins"]
allow = ["admin"]
on = [""]
`;

authorizerContract(t, 'AclAuthorizer (prefixes and groups, no default)', async () => {
  const dir = t.testdir({ 'acl.toml': ACL });
  return {
    authorizer: await AclAuthorizer.load(join(dir, 'acl.toml')),
    cases: [
      ...expect('example.com/app', undefined, []),
      ...expect('example.com/app', ALICE, ['push']),
      ...expect('example.com/team/tool', ALICE, ['push']),
      ...expect('example.community/y', ALICE, []),
      ...expect('other.org/x', ALICE, []),
      ...expect(undefined, ALICE, ['push']),
      ...expect('example.com/app', BOB, []),
      ...expect('example.com/team/tool', BOB, ['push', 'yank']),
      ...expect('other.org/x', CI, ['push', 'yank']),
      ...expect('example.com/app', CI, []),
      ...expect('anything/at/all', ROOT, ['push', 'yank', 'admin']),
      ...expect(undefined, ROOT, ['push', 'yank', 'admin']),
      ...expect('example.com/app', EVE, []),
      ...expect(undefined, EVE, []),
    ],
  };
});

authorizerContract(t, 'AclAuthorizer (a default for authenticated principals)', async () => {
  const dir = t.testdir({ 'acl.toml': `default = ["push"]\n${ACL}` });
  return {
    authorizer: await AclAuthorizer.load(join(dir, 'acl.toml')),
    cases: [
      ...expect('example.com/app', undefined, []),
      ...expect('example.com/app', EVE, ['push']),
      ...expect('example.com/team/tool', BOB, ['push', 'yank']),
      ...expect('example.com/app', BOB, ['push']),
    ],
  };
});

t.test('an anonymous write is told to send credentials', async (t) => {
  for (const authorizer of [new AnonymousGetAuthorizer(), await AclAuthorizer.load(join(t.testdir({ 'acl.toml': ACL }), 'acl.toml'))]) {
    t.throws(() => authorizer.authorize(undefined, 'push', 'example.com/app'), {
      code: 'forbidden',
      message: /needs credentials \(send an Authorization header\)/,
    });
  }
});

t.test('a refusal names the principal, the missing grant and the name', async (t) => {
  const acl = await AclAuthorizer.load(join(t.testdir({ 'acl.toml': ACL }), 'acl.toml'));
  t.throws(() => acl.authorize(ALICE, 'yank', 'example.com/app'), { code: 'forbidden', message: /^alice lacks the yank grant on "example.com\/app"/ });
  t.throws(() => acl.authorize(ALICE, 'yank', 'example.com/app'), { message: /ask an administrator for yank \(or admin\) on a prefix/ });
  const admin = (() => {
    try {
      acl.authorize(ALICE, 'admin', 'example.com/app');
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  })();
  t.match(admin, /ask an administrator for admin on a prefix/);
  t.notMatch(admin, /admin \(or admin\)/, 'the admin grant is not offered as its own alternative');
});

t.test('AclAuthorizer rejects an invalid file and reloads a changed one', async (t) => {
  const dir = t.testdir({
    'acl.toml': ACL,
    'unknown-group.toml': '[[grant]]\nto = ["group:nobody"]\nallow = ["push"]\non = [""]\n',
    'bad-grant.toml': '[[grant]]\nto = ["alice"]\nallow = ["delete"]\non = [""]\n',
    'bad-toml.toml': '[[grant\n',
  });
  await t.rejects(AclAuthorizer.load(join(dir, 'unknown-group.toml')), { code: 'invalid_config', message: /grant\[0\]\.to names "group:nobody"/ });
  await t.rejects(AclAuthorizer.load(join(dir, 'bad-grant.toml')), { code: 'invalid_config', message: /grant\[0\]\.allow\[0\]: must be one of "push", "yank", "admin"/ });
  await t.rejects(AclAuthorizer.load(join(dir, 'bad-toml.toml')), { code: 'invalid_config', message: /invalid TOML/ });
  await t.rejects(AclAuthorizer.load(join(dir, 'missing.toml')), { code: 'invalid_config', message: /cannot read ACL file/ });

  const path = join(dir, 'acl.toml');
  const acl = await AclAuthorizer.load(path);
  t.throws(() => acl.authorize(EVE, 'push', 'example.com/app'), { code: 'forbidden' });
  writeFileSync(path, `[[grant]]\nto = ["eve"]\nallow = ["push"]\non = ["example.com/"]\n`);
  await acl.reload();
  t.doesNotThrow(() => acl.authorize(EVE, 'push', 'example.com/app'), 'the new grant applies');
  t.throws(() => acl.authorize(ALICE, 'push', 'example.com/app'), { code: 'forbidden' }, 'the old one is gone');
  writeFileSync(path, 'garbage = [');
  await t.rejects(acl.reload(), { code: 'invalid_config' });
  t.doesNotThrow(() => acl.authorize(EVE, 'push', 'example.com/app'), 'a failed reload keeps the last good version');
});

t.test('an ACL prefix no valid bindle name starts with is refused, at load and at reload', async (t) => {
  const long = `${'a'.repeat(255)}/${'b'.repeat(255)}`;
  const valid = [
    '', 'example.com/', 'example.com/app', 'example.com/ap', 'Example.COM/', 'example.com/app/1', 'example.com/.', 'example.com/..',
    'example.com/.hid', 'café/', '例え.jp/', 'ελληνικά/', long, `${long.slice(0, 510)}/`,
  ];
  for (const prefix of valid) t.equal(prefixProblem(prefix), undefined, `${JSON.stringify(prefix)} starts some name`);
  const invalid: Array<[string, RegExp]> = [
    ['/', /empty path segment/],
    ['/example.com/', /empty path segment/],
    ['example.com//', /empty path segment/],
    ['example.com//app', /empty path segment/],
    ['example.com/../', /"\.\." path segment/],
    ['example.com/./app', /"\." path segment/],
    ['example.com/my app', /segment "my app" may only hold/],
    ['cafe\u0301/', /NFC/],
    ['example.com/\u0301', /combining mark/],
    ['paypal.cоm/', /mixes scripts/],
    [`${'a'.repeat(511)}/`, /at most 512 bytes/],
    ['a'.repeat(513), /at most 512 bytes/],
  ];
  for (const [prefix, problem] of invalid) t.match(prefixProblem(prefix), problem, `${JSON.stringify(prefix)} starts no name`);

  const dir = t.testdir({
    'acl.toml': ACL,
    'double-slash.toml': '[[grant]]\nto = ["alice"]\nallow = ["push"]\non = ["example.com/", "example.com//app"]\n',
    'later-grant.toml': `${ACL}\n[[grant]]\nto = ["eve"]\nallow = ["yank"]\non = ["/example.com/"]\n`,
  });
  await t.rejects(AclAuthorizer.load(join(dir, 'double-slash.toml')), {
    code: 'invalid_config',
    message: `ACL file ${join(dir, 'double-slash.toml')}: grant[0].on[1] "example.com//app" is a prefix of no valid bindle name, so it would grant nothing: name must not have an empty path segment (leading, trailing or double "/")`,
  });
  await t.rejects(AclAuthorizer.load(join(dir, 'later-grant.toml')), { code: 'invalid_config', message: /grant\[3\]\.on\[0\] "\/example\.com\/" is a prefix of no valid bindle name/ });
  const path = join(dir, 'acl.toml');
  const acl = await AclAuthorizer.load(path);
  writeFileSync(path, '[[grant]]\nto = ["eve"]\nallow = ["push"]\non = ["example.com//"]\n');
  await t.rejects(acl.reload(), { code: 'invalid_config', message: /grant\[0\]\.on\[0\] "example\.com\/\/"/ });
  t.doesNotThrow(() => acl.authorize(ALICE, 'push', 'example.com/app'), 'the last good version stays in force');
  t.throws(() => acl.authorize(EVE, 'push', 'example.com/app'), { code: 'forbidden' });
});

t.test('GET and HEAD read; DELETE yanks; other methods push', async (t) => {
  for (const method of ['GET', 'HEAD', 'get', 'head']) t.equal(actionForMethod(method), 'read', method);
  for (const method of ['DELETE', 'delete']) t.equal(actionForMethod(method), 'yank', method);
  for (const method of ['POST', 'PUT', 'PATCH', 'post']) t.equal(actionForMethod(method), 'push', method);
});

t.test('hard=true and allow_deleted=true make a write an admin action', async (t) => {
  t.equal(actionForRequest('DELETE', { hard: 'true' }), 'admin');
  t.equal(actionForRequest('POST', { allow_deleted: 'true' }), 'admin');
  t.equal(actionForRequest('DELETE', { hard: 'TRUE' }), 'admin', 'every spelling the routes read as true');
  t.equal(actionForRequest('DELETE', { hard: '1' }), 'admin');
  t.equal(actionForRequest('DELETE', { hard: ['false', 'true'] }), 'admin', 'also among repeats');
  t.equal(actionForRequest('DELETE', { hard: 'false' }), 'yank');
  t.equal(actionForRequest('DELETE', {}), 'yank');
  t.equal(actionForRequest('POST', undefined), 'push');
  t.equal(actionForRequest('GET', { hard: 'true' }), 'read', 'reads stay reads');
  t.throws(() => new AnonymousGetAuthorizer().authorize(ALICE, 'admin', 'x'), { code: 'forbidden', message: /lacks the admin grant/ });
});
