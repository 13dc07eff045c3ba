/**
 * Issue 11 item 6: credential floods. bcrypt on worker threads (BcryptPool), failed attempts
 * limited per client address (FailedAttemptLimiter → 429 with Retry-After), and the htpasswd
 * cache emptied when the file changes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply } from '../../schema/index.js';
import { HTTP_STATUS, isBindleError, type BindleError } from '../../core/errors/bindle-error.js';
import { BcryptPool } from '../../server/auth/bcrypt-pool.js';
import {
  AnonymousGetAuthorizer, FailedAttemptLimiter, MAX_WAITING_ATTEMPTS, HtpasswdAuthenticator, TooManyRequestsError, type Authenticator,
} from '../../server/auth/index.js';
import { makeTestApp } from '../helpers/test-app.js';
import { authenticatorContract } from './authenticator-contract.js';

function basic(userPass: string): string {
  return `Basic ${Buffer.from(userPass).toString('base64')}`;
}

const HASH = bcrypt.hashSync('pw1', 4);

t.test('BcryptPool compares on worker threads with bcrypt semantics', async (t) => {
  const pool = new BcryptPool(2);
  const results = await Promise.all([
    pool.compare('pw1', HASH),
    pool.compare('pw2', HASH),
    pool.compare('pw1', HASH.replace(/.$/, HASH.endsWith('a') ? 'b' : 'a')),
    pool.compare('pw1', 'not a bcrypt hash'),
  ]);
  t.same(results, [true, false, false, false]);
});

authenticatorContract(t, 'FailedAttemptLimiter over HtpasswdAuthenticator', async () => ({
  authenticator: new FailedAttemptLimiter(await HtpasswdAuthenticator.parse(`u1:${HASH}\n`, 'test'), { maxFailures: 1000 }),
  good: [{ header: basic('u1:pw1'), principal: { id: 'u1', kind: 'basic' } }],
  bad: [{ label: 'wrong password', header: basic('u1:wrong') }, { label: 'unknown user', header: basic('nobody:pw1') }],
}));

t.test('FailedAttemptLimiter refuses an address after too many failures, for one window', async (t) => {
  let now = 1_000_000;
  const inner = await HtpasswdAuthenticator.parse(`u1:${HASH}\n`, 'test');
  const limiter = new FailedAttemptLimiter(inner, { maxFailures: 3, windowMs: 10_000, now: () => now });
  const a = { address: '192.0.2.1' };
  const b = { address: '192.0.2.2' };
  for (let i = 0; i < 3; i++) await t.rejects(limiter.authenticate(basic('u1:guess'), a), { code: 'unauthenticated' });
  now += 4_000;
  const refused = limiter.authenticate(basic('u1:pw1'), a);
  await t.rejects(refused, { code: 'too_many_requests', message: /too many failed authentication attempts from 192\.0\.2\.1; try again in 6 s/ });
  await refused.catch((err: unknown) => {
    t.ok(err instanceof TooManyRequestsError);
    if (err instanceof TooManyRequestsError) t.equal(err.retryAfterSeconds, 6);
  });
  t.equal(await limiter.authenticate(undefined, a), undefined, 'anonymous requests are not limited');
  t.same(await limiter.authenticate(basic('u1:pw1'), b), { id: 'u1', kind: 'basic' }, 'other addresses are not limited');
  t.same(await limiter.authenticate(basic('u1:pw1')), { id: 'u1', kind: 'basic' }, 'without an address nothing is limited');
  now += 6_001;
  t.same(await limiter.authenticate(basic('u1:pw1'), a), { id: 'u1', kind: 'basic' }, 'the window ends');
  t.equal(HTTP_STATUS.too_many_requests, 429);
});

t.test('FailedAttemptLimiter counts attempts in flight: concurrent guesses get no more checks than the limit', async (t) => {
  const inner = await HtpasswdAuthenticator.parse(`u1:${HASH}\n`, 'test');
  let checks = 0;
  const counting: Authenticator = {
    async authenticate(header) {
      checks++;
      return inner.authenticate(header);
    },
  };
  const limiter = new FailedAttemptLimiter(counting, { maxFailures: 10 });
  const a = { address: '192.0.2.1' };
  const outcomes = await Promise.allSettled(Array.from({ length: 150 }, (_, i) => limiter.authenticate(basic(`u1:guess${i}`), a)));
  const codes = outcomes.map((o) => (o.status === 'rejected' && isBindleError(o.reason) ? o.reason.code : o.status));
  t.equal(checks, 10, 'only the limit reached the password check');
  t.equal(codes.filter((c) => c === 'unauthenticated').length, 10);
  t.equal(codes.filter((c) => c === 'too_many_requests').length, 140, 'the rest were refused');
  await t.rejects(limiter.authenticate(basic('u1:pw1'), a), { code: 'too_many_requests' }, 'the window is spent');
  t.same(await limiter.authenticate(basic('u1:pw1'), { address: '192.0.2.2' }), { id: 'u1', kind: 'basic' }, 'other addresses are not limited');

  const b = { address: '192.0.2.3' };
  checks = 0;
  const mixed = await Promise.allSettled([
    ...Array.from({ length: 9 }, (_, i) => limiter.authenticate(basic(`u1:guess${i}`), b)),
    limiter.authenticate(basic('u1:pw1'), b),
  ]);
  t.equal(checks, 10);
  t.same(mixed[9], { status: 'fulfilled', value: { id: 'u1', kind: 'basic' } }, 'a right password under the limit works, also in flight');
  t.same(await limiter.authenticate(basic('u1:pw1'), b), { id: 'u1', kind: 'basic' }, 'a success releases its slot');
  await t.rejects(limiter.authenticate(basic('u1:guess'), b), { code: 'unauthenticated' }, 'the tenth failure is still checked');
  await t.rejects(limiter.authenticate(basic('u1:pw1'), b), { code: 'too_many_requests' });

  const c = { address: '192.0.2.4' };
  checks = 0;
  const many = await Promise.allSettled(Array.from({ length: 40 }, () => limiter.authenticate(basic('u1:pw1'), c)));
  t.equal(many.filter((o) => o.status === 'fulfilled').length, 40, 'a client with good credentials sending many requests at once waits its turn: none refused');
  t.equal(checks, 40);
});

t.test('FailedAttemptLimiter: attempts waiting for a slot are bounded', async (t) => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slow: Authenticator = {
    async authenticate() {
      await gate;
      return { id: 'u1', kind: 'basic' };
    },
  };
  const limiter = new FailedAttemptLimiter(slow, { maxFailures: 2 });
  const a = { address: '192.0.2.9' };
  const attempts = Array.from({ length: 2 + MAX_WAITING_ATTEMPTS + 1 }, () => limiter.authenticate(basic('u1:pw1'), a));
  const last = attempts.at(-1);
  t.ok(last);
  if (last !== undefined) await t.rejects(last, { code: 'too_many_requests' }, 'one past the waiting bound is refused at once');
  release();
  const settled = await Promise.allSettled(attempts.slice(0, -1));
  t.equal(settled.filter((o) => o.status === 'fulfilled').length, 2 + MAX_WAITING_ATTEMPTS, 'the others are all checked in turn');
});

t.test('FailedAttemptLimiter tracks a bounded number of addresses', async (t) => {
  const inner = await HtpasswdAuthenticator.parse(`u1:${HASH}\n`, 'test');
  const limiter = new FailedAttemptLimiter(inner, { maxFailures: 1, maxClients: 2 });
  for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) {
    await t.rejects(limiter.authenticate(basic('u1:guess'), { address }), { code: 'unauthenticated' });
  }
  await t.rejects(limiter.authenticate(basic('u1:guess'), { address: '192.0.2.3' }), { code: 'too_many_requests' });
  await t.rejects(limiter.authenticate(basic('u1:guess'), { address: '192.0.2.1' }), { code: 'unauthenticated' }, 'the oldest was forgotten');
});

t.test('over HTTP, a flood of bad credentials gets 429 with Retry-After and an error body', async (t) => {
  const authenticator: Authenticator = new FailedAttemptLimiter(await HtpasswdAuthenticator.parse(`u1:${HASH}\n`, 'test'), { maxFailures: 5 });
  const ta = await makeTestApp(t, { authenticator, authorizer: new AnonymousGetAuthorizer() });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) {
    const res = await ta.app.inject({ method: 'GET', url: '/v1/_q', headers: { authorization: basic(`u1:guess${i}`) } });
    statuses.push(res.statusCode);
    if (res.statusCode === 429) {
      t.match(res.headers['retry-after'], /^[1-9]\d*$/, 'Retry-After in seconds');
      const body = TOML.parse(res.body) as unknown as ErrorReply;
      t.equal(body.code, 'too_many_requests');
    }
  }
  t.same(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
  const anonymous = await ta.app.inject({ method: 'GET', url: '/v1/_q' });
  t.equal(anonymous.statusCode, 200, 'anonymous reads from the same address still work');
});

t.test('HtpasswdAuthenticator re-reads a changed file and forgets cached verifications', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-htpasswd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'htpasswd');
  writeFileSync(path, `u1:${HASH}\n`);
  const reported: BindleError[] = [];
  // The file is looked at once a second; the test moves that clock past each change.
  const clock = { now: 0 };
  const auth = await HtpasswdAuthenticator.load(path, { onReloadFailure: (err) => reported.push(err), fileChecks: { now: () => clock.now } });
  t.same(await auth.authenticate(basic('u1:pw1')), { id: 'u1', kind: 'basic' });
  t.equal(auth.cacheSize, 1);
  writeFileSync(path, `u1:${bcrypt.hashSync('new password', 4)}\nu2:${HASH}\n`);
  t.same(await auth.authenticate(basic('u1:pw1')), { id: 'u1', kind: 'basic' }, 'within a second of the last look, the change is not seen yet');
  clock.now += 1000;
  await t.rejects(auth.authenticate(basic('u1:pw1')), { code: 'unauthenticated' }, 'the old password no longer works');
  t.same(await auth.authenticate(basic('u1:new password')), { id: 'u1', kind: 'basic' });
  t.same(await auth.authenticate(basic('u2:pw1')), { id: 'u2', kind: 'basic' }, 'a new user is known');
  t.same(reported, [], 'good versions report nothing');
  writeFileSync(path, `u2:${HASH}\nu3:$apr1$abc$defghijklmnopqrstuvw\n`);
  clock.now += 1000;
  t.same(await auth.authenticate(basic('u1:new password')), { id: 'u1', kind: 'basic' }, 'an invalid file keeps the last good version');
  t.equal(auth.size, 2);
  t.match(reported, [{ code: 'invalid_config', message: `htpasswd file ${path} line 2: user "u3" has an unsupported Apache MD5 ($apr1$) hash; only bcrypt ($2y$, $2a$, $2b$) is accepted (create entries with 'htpasswd -B')` }], 'and is reported, naming the file and the fault');
  t.same(await auth.authenticate(basic('u2:pw1')), { id: 'u2', kind: 'basic' });
  t.equal(reported.length, 1, 'once per version');
  rmSync(path);
  clock.now += 1000;
  t.same(await auth.authenticate(basic('u2:pw1')), { id: 'u2', kind: 'basic' }, 'so does a removed one');
  t.match(reported[1], { code: 'invalid_config', message: `cannot read htpasswd file ${path}: ENOENT` });
});
