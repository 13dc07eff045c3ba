/**
 * `bindle login` with the built programs: the packaged `bindle-server` process configured with
 * OIDC (discovering the provider, no local key set) and the bundled `bindle` CLI, against a real
 * local HTTP process acting as the OIDC provider. The login is stored 0600 and authorizes a
 * later write that was refused before it.
 */
import t from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { cliRunner, exits } from '../helpers/cli-runner.js';
import { CLIENT_ID, startProvider } from '../helpers/oidc-provider.js';
import { startServerProcess } from '../helpers/server-process.js';

t.test('login with the packaged server and CLI', async (t) => {
  const provider = await startProvider(t);
  const server = await startServerProcess(t, {
    args: ['--oidc-issuer-url', provider.origin, '--oidc-client-id', CLIENT_ID, '--oidc-device-url', `${provider.origin}/device`],
  });
  const home = join(t.testdir(), 'home');
  const bindle = cliRunner(home);
  const global = ['-s', server.url, '--retries', '0'];
  const missing = 'example.com/login-e2e/1.0.0';

  const before = await bindle([...global, 'yank', missing]);
  exits(t, before, 1, 'an anonymous write is refused');
  t.match(before.stderr, /anonymous|forbidden|credentials/i);

  provider.polls.push('authorization_pending');
  const login = await bindle([...global, 'login']);
  exits(t, login, 0, 'login');
  t.match(login.stdout, 'enter the code WDJB-MJHT');
  t.equal(statSync(join(home, '.config', 'bindle', '.token')).mode & 0o777, 0o600, 'token file is 0600');

  const after = await bindle([...global, 'yank', missing]);
  exits(t, after, 1, 'the bindle does not exist');
  t.match(after.stderr, /not.found|does not exist|no bindle/i, 'but the write is authorized with the stored token');
  t.notMatch(after.stderr, /anonymous|forbidden/i);
});
