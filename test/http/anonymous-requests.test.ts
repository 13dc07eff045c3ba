/**
 * A request without credentials (no Authorization header, a blank one, or Basic with an empty user
 * name and password) is anonymous by the Authenticator contract: the auth hook decides so itself,
 * without asking the authenticator, and the authorizer still rules on the anonymous principal (a
 * refusal is the usual 401 with its challenge). A request with credentials still goes to the authenticator, and its refusals and
 * principals are what they were.
 */
import t from 'tap';
import TOML from '@iarna/toml';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authenticator, Authorizer, Principal } from '../../server/auth/index.js';
import { signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, storeInvoiceDirect } from '../helpers/test-app.js';

/** Accepts `Bearer good` as alice; counts the headers it was asked about. */
class CountingAuthenticator implements Authenticator {
  readonly asked: Array<string | undefined> = [];

  authenticate(header: string | undefined): Promise<Principal | undefined> {
    this.asked.push(header);
    if (header === undefined || header.trim() === '') return Promise.resolve(undefined);
    if (header === 'Bearer good') return Promise.resolve({ id: 'alice', kind: 'token' });
    return Promise.reject(new BindleError('unauthenticated', 'bad token'));
  }
}

/** Records what it was asked; refuses anonymous callers when `anonymous` is false. */
class RecordingAuthorizer implements Authorizer {
  readonly decisions: Array<{ principal: string | undefined; action: Action }> = [];
  anonymous = true;

  authorize(principal: Principal | undefined, action: Action): void {
    this.decisions.push({ principal: principal?.id, action });
    if (principal === undefined && !this.anonymous) throw new BindleError('unauthenticated', 'log in to read');
  }
}

t.test('no or blank credentials are anonymous without asking the authenticator', async (t) => {
  const authenticator = new CountingAuthenticator();
  const authorizer = new RecordingAuthorizer();
  const ta = await makeTestApp(t, { authenticator, authorizer });
  const invoice = signedInvoice('example.com/anon', '1.0.0', []);
  await storeInvoiceDirect(ta, invoice);
  const url = '/v1/_i/example.com/anon/1.0.0';

  const plain = await ta.app.inject({ method: 'GET', url });
  t.equal(plain.statusCode, 200);
  t.equal((TOML.parse(plain.body) as { bindle: { name: string } }).bindle.name, 'example.com/anon');
  const blank = await ta.app.inject({ method: 'GET', url, headers: { authorization: '   ' } });
  t.equal(blank.statusCode, 200, 'a blank header carries no credentials');
  const emptyBasic = await ta.app.inject({ method: 'GET', url, headers: { authorization: 'Basic Og==' } });
  t.equal(emptyBasic.statusCode, 200, 'nor does Basic with an empty user name and password (OCI clients without credentials)');
  const head = await ta.app.inject({ method: 'HEAD', url });
  t.equal(head.statusCode, 200);
  const missing = await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/anon/2.0.0' });
  t.equal(missing.statusCode, 404, 'a miss is still the route\'s answer');
  t.same(authenticator.asked, [], 'the authenticator was not asked');
  t.same(authorizer.decisions, Array(5).fill({ principal: undefined, action: 'read' }), 'the authorizer ruled on every request');

  authorizer.anonymous = false;
  const refused = await ta.app.inject({ method: 'GET', url });
  t.equal(refused.statusCode, 401, 'an authorizer may still refuse anonymous reads');
  t.equal(refused.headers['www-authenticate'], 'Basic realm="bindle", Bearer');
  t.match(refused.body, /log in to read/);
});

t.test('credentials still go to the authenticator', async (t) => {
  const authenticator = new CountingAuthenticator();
  const authorizer = new RecordingAuthorizer();
  const ta = await makeTestApp(t, { authenticator, authorizer });
  await storeInvoiceDirect(ta, signedInvoice('example.com/anon', '1.0.0', []));
  const url = '/v1/_i/example.com/anon/1.0.0';

  const good = await ta.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer good' } });
  t.equal(good.statusCode, 200);
  const bad = await ta.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer bad' } });
  t.equal(bad.statusCode, 401);
  t.match(bad.body, /bad token/);
  t.same(authenticator.asked, ['Bearer good', 'Bearer bad']);
  t.same(authorizer.decisions, [{ principal: 'alice', action: 'read' }], 'a refused credential never reaches the authorizer');
});
