/**
 * `bindle login` (the OAuth 2.0 device flow, RFC 8628) and the stored login, run in-process
 * against a real Bindle server listening on 127.0.0.1 with OIDC configured (anonymous reads,
 * authenticated writes) and a real local HTTP process acting as the OIDC provider (discovery,
 * key set, device-authorization and token endpoints) that issues signed ID tokens. Covers: the
 * token file is written 0600 and sent by later commands; an expired login is refreshed;
 * authorization_pending and slow_down polling; expired, denied and refused logins; a server
 * without OIDC.
 */
import t, { type Test } from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import TOML from '@iarna/toml';
import { pollForTokens, refreshTokens, SLOW_DOWN_STEP_SEC, type DeviceAuthorization } from '../../client/lib/device-flow.js';
import { AnonymousGetAuthorizer } from '../../server/auth/authorizers.js';
import { ChainAuthenticator } from '../../server/auth/chain-authenticator.js';
import { OidcAuthenticator } from '../../server/auth/oidc-authenticator.js';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { listenTestApp } from '../helpers/test-app.js';
import { CLIENT_ID, startProvider, type Provider } from '../helpers/oidc-provider.js';

const MISSING = 'example.com/login-test/1.0.0';

/** A Bindle server trusting the provider, where reads are anonymous and writes need a login. */
async function startServer(t: Test, provider: Provider): Promise<string> {
  const oidc = await OidcAuthenticator.create({ issuerUrl: provider.origin, clientId: CLIENT_ID, deviceUrl: `${provider.origin}/device` });
  const server = await listenTestApp(t, { authenticator: new ChainAuthenticator([oidc]), authorizer: new AnonymousGetAuthorizer(), login: oidc });
  return server.url;
}

/** A provider, a server trusting it, and a CLI with its own home directory. */
async function setUp(t: Test): Promise<{ provider: Provider; bindle: ReturnType<typeof inProcessCli>; global: string[]; home: string; tokenFile: string }> {
  const provider = await startProvider(t);
  const url = await startServer(t, provider);
  const home = join(t.testdir(), 'home');
  return { provider, bindle: inProcessCli(home), global: ['-s', url, '--retries', '0'], home, tokenFile: join(home, '.config', 'bindle', '.token') };
}

function deviceAuth(provider: Provider, intervalSec: number): DeviceAuthorization {
  return { deviceCode: 'dev-1', userCode: 'WDJB-MJHT', verificationUri: `${provider.origin}/activate`, expiresInSec: 600, intervalSec, clientId: CLIENT_ID, tokenUrl: `${provider.origin}/token` };
}

t.test('login stores a 0600 token that later commands send', async (t) => {
  const { provider, bindle, global, home, tokenFile } = await setUp(t);

  const anonymous = await bindle([...global, 'yank', MISSING]);
  t.equal(anonymous.code, 1, 'before login a write is refused');
  t.match(anonymous.stderr, /anonymous|forbidden|credentials/i);

  provider.polls.push('authorization_pending', 'authorization_pending');
  const login = await bindle([...global, 'login']);
  t.equal(login.code, 0, 'login succeeds', { stderr: login.stderr });
  t.match(login.stdout, `Open ${provider.origin}/activate in a browser and enter the code WDJB-MJHT`);
  t.match(login.stdout, `Logged in. The token is stored in ${tokenFile}`);
  t.equal(provider.tokenRequests.length, 3, 'polled until approved');
  t.same(Object.fromEntries(provider.tokenRequests[0] ?? []), { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: 'dev-1', client_id: CLIENT_ID });
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'token file is 0600');
  const stored = TOML.parse(readFileSync(tokenFile, 'utf8')) as Record<string, unknown>;
  t.match(stored, { access_token: 'access-1', refresh_token: 'refresh-1', client_id: CLIENT_ID, token_url: `${provider.origin}/token`, id_token: /^ey/ });
  t.ok(typeof stored.expires_at === 'number' && stored.expires_at > Date.now() / 1000, 'expiry stored');

  const authed = await bindle([...global, 'yank', MISSING]);
  t.equal(authed.code, 1);
  t.match(authed.stderr, /not.found|does not exist|no bindle/i, 'the stored token is sent: the write is authorized and reaches the missing bindle');
  t.notMatch(authed.stderr, /anonymous|forbidden/i);

  const basic = await bindle([...global, '--http-user', 'u', '--http-password', 'p', 'yank', MISSING]);
  t.match(basic.stderr, /unsupported authorization scheme "Basic"/, 'explicit credentials win over the stored login');
  const bare = join(home, 'other-token');
  writeFileSync(bare, 'not-a-jwt\n');
  const explicit = await bindle([...global, '-t', bare, 'yank', MISSING]);
  t.match(explicit.stderr, /malformed bearer token/, 'a token file given with -t wins over the stored login');
});

t.test('an expired login is refreshed before use; a refused refresh says to log in again', async (t) => {
  const { provider, bindle, global, tokenFile } = await setUp(t);
  t.equal((await bindle([...global, 'login'])).code, 0);
  const expired = readFileSync(tokenFile, 'utf8').replace(/expires_at = \d+/, `expires_at = ${Math.floor(Date.now() / 1000) - 10}`);
  writeFileSync(tokenFile, expired, { mode: 0o600 });

  const r = await bindle([...global, 'yank', MISSING]);
  t.match(r.stderr, /not.found|does not exist|no bindle/i, 'the refreshed token is accepted', { stderr: r.stderr });
  const refresh = provider.tokenRequests.at(-1);
  t.same(Object.fromEntries(refresh ?? []), { grant_type: 'refresh_token', refresh_token: 'refresh-1', client_id: CLIENT_ID });
  const stored = TOML.parse(readFileSync(tokenFile, 'utf8')) as Record<string, unknown>;
  t.match(stored, { access_token: 'access-2', refresh_token: 'refresh-2' }, 'new tokens stored');
  t.ok(typeof stored.expires_at === 'number' && stored.expires_at > Date.now() / 1000, 'new expiry stored');
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'still 0600');

  provider.revoked.add('refresh-2');
  writeFileSync(tokenFile, readFileSync(tokenFile, 'utf8').replace(/expires_at = \d+/, 'expires_at = 1'), { mode: 0o600 });
  const refused = await bindle([...global, 'yank', MISSING]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /has expired and could not be refreshed .*invalid_grant.*run 'bindle login' again/);
});

t.test('polling honours interval and slow_down (RFC 8628 §3.5)', async (t) => {
  const provider = await startProvider(t);
  provider.polls.push('authorization_pending', 'slow_down', 'authorization_pending');
  const waits: number[] = [];
  const tokens = await pollForTokens(deviceAuth(provider, 2), { sleep: async (ms) => void waits.push(ms) });
  t.equal(tokens.accessToken, 'access-1');
  t.same(waits, [2000, 2000, 2000 + SLOW_DOWN_STEP_SEC * 1000, 2000 + SLOW_DOWN_STEP_SEC * 1000], 'waits the interval, 5 s more after slow_down');
  t.equal(provider.tokenRequests.length, 4);

  let clock = 0;
  provider.polls.push('authorization_pending', 'authorization_pending', 'authorization_pending');
  const auth = { ...deviceAuth(provider, 5), expiresInSec: 12 };
  await t.rejects(pollForTokens(auth, { sleep: async (ms) => void (clock += ms), now: () => clock }), { code: 'unauthenticated', message: /expired before it was approved/ }, 'gives up once expires_in has passed');
  provider.polls.length = 0;

  await t.rejects(refreshTokens(`${provider.origin}/nowhere`, CLIENT_ID, 'r'), { code: 'unavailable', message: /HTTP 404 without a JSON body/ });
});

t.test('the CLI follows slow_down and reports login failures clearly', async (t) => {
  const { provider, bindle, global } = await setUp(t);

  provider.polls.push('slow_down');
  const slow = await bindle([...global, 'login']);
  t.equal(slow.code, 0, { stderr: slow.stderr });
  t.match(slow.stdout, `poll less often: every ${SLOW_DOWN_STEP_SEC} s now`);

  provider.polls.push('expired_token');
  const expired = await bindle([...global, 'login']);
  t.equal(expired.code, 1);
  t.match(expired.stderr, /^bindle: login failed: the login code WDJB-MJHT expired before it was approved\n$/);

  provider.polls.push('access_denied');
  const denied = await bindle([...global, 'login']);
  t.equal(denied.code, 1);
  t.match(denied.stderr, /^bindle: login failed: the login was denied at the provider\n$/);

  const plain = await listenTestApp(t);
  const none = await bindle(['-s', plain.url, '--retries', '0', 'login']);
  t.equal(none.code, 1);
  t.match(none.stderr, /could not start a login .*\(the server offers no login: it is not configured with OIDC/);
});
