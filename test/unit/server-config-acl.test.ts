/**
 * `--acl-file` / `BINDLE_ACL_FILE` / `aclFile` (issue 11 item 12): resolved like every path
 * setting, refused without authentication, and turned into an AclAuthorizer by buildAuth.
 */
import { join } from 'node:path';
import t from 'tap';
import { AclAuthorizer, AnonymousGetAuthorizer, buildAuth, tokenDigest } from '../../server/auth/index.js';
import { loadServerConfig } from '../../server/config/server-config.js';

const ACL = '[[grant]]\nto = ["ci"]\nallow = ["push"]\non = ["example.com/"]\n';
const AUTH = ['--token-file', 'tokens'];

t.test('the ACL file comes from the flag, the environment or the config file', async (t) => {
  const cwd = t.testdir({ 'acl.toml': ACL, 'env.toml': ACL, tokens: `ci:${tokenDigest('t')}\n`, 'config.toml': 'aclFile = "acl.toml"\ntokenFile = "tokens"\n' });
  t.equal((await loadServerConfig([...AUTH, '--acl-file', 'acl.toml'], {}, cwd)).aclFile, join(cwd, 'acl.toml'));
  t.equal((await loadServerConfig(AUTH, { BINDLE_ACL_FILE: 'env.toml' }, cwd)).aclFile, join(cwd, 'env.toml'));
  t.equal((await loadServerConfig(['--config-path', 'config.toml'], {}, cwd)).aclFile, join(cwd, 'acl.toml'));
  t.equal((await loadServerConfig(AUTH, {}, cwd)).aclFile, undefined);
});

t.test('an ACL needs authentication', async (t) => {
  const cwd = t.testdir({ 'acl.toml': ACL });
  await t.rejects(loadServerConfig(['--acl-file', 'acl.toml'], {}, cwd), { code: 'invalid_config', message: /--acl-file needs authentication/ });
  await t.rejects(loadServerConfig(['--unauthenticated'], { BINDLE_ACL_FILE: 'acl.toml' }, cwd), {
    code: 'invalid_config', message: /BINDLE_ACL_FILE needs authentication/,
  });
});

t.test('buildAuth authorizes by name with the ACL, and falls back to any authenticated writer without one', async (t) => {
  const cwd = t.testdir({ 'acl.toml': ACL, 'bad.toml': 'default = ["delete"]\n', tokens: `ci:${tokenDigest('t')}\n` });
  const withAcl = await buildAuth(await loadServerConfig([...AUTH, '--acl-file', 'acl.toml'], {}, cwd));
  t.ok(withAcl.authorizer instanceof AclAuthorizer);
  t.equal(withAcl.acl, withAcl.authorizer);
  const without = await buildAuth(await loadServerConfig(AUTH, {}, cwd));
  t.ok(without.authorizer instanceof AnonymousGetAuthorizer);
  t.equal(without.acl, undefined);
  await t.rejects(buildAuth(await loadServerConfig([...AUTH, '--acl-file', 'bad.toml'], {}, cwd)), { code: 'invalid_config', message: /default\[0\]/ });
});

t.test('an ACL with a prefix no bindle name starts with fails the start, naming the setting and where it came from', async (t) => {
  const cwd = t.testdir({ 'acl.toml': '[[grant]]\nto = ["ci"]\nallow = ["push"]\non = ["example.com//"]\n', tokens: `ci:${tokenDigest('t')}\n` });
  const problem = `ACL file ${join(cwd, 'acl.toml')}: grant[0].on[0] "example.com//" is a prefix of no valid bindle name, so it would grant nothing: name must not have an empty path segment (leading, trailing or double "/")`;
  await t.rejects(buildAuth(await loadServerConfig([...AUTH, '--acl-file', 'acl.toml'], {}, cwd)), { code: 'invalid_config', message: `--acl-file: ${problem}` });
  await t.rejects(buildAuth(await loadServerConfig(AUTH, { BINDLE_ACL_FILE: 'acl.toml' }, cwd)), {
    code: 'invalid_config', message: `environment variable BINDLE_ACL_FILE: ${problem}`,
  });
});
