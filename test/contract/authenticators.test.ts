import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import t, { type Test } from 'tap';
import {
  AlwaysAuthorizer,
  AnonymousGetAuthorizer,
  buildAuth,
  ChainAuthenticator,
  FailedAttemptLimiter,
  HtpasswdAuthenticator,
  NoAuthenticator,
  OidcAuthenticator,
  StaticTokenAuthenticator,
  tokenDigest,
} from '../../server/auth/index.js';
import type { BindleError } from '../../core/errors/bindle-error.js';
import { loadServerConfig } from '../../server/config/server-config.js';
import { serveLocally } from '../helpers/local-server.js';
import { VECTOR_SETS, vec } from '../helpers/paths.js';
import { authenticatorContract } from './authenticator-contract.js';

const ISSUER = 'https://issuer.bindle.test';
const CLIENT_ID = 'bindle-server';
const ADMIN = `Basic ${Buffer.from('admin:sw0rdf1sh').toString('base64')}`;
const CI_TOKEN = 's3cret-token-for-ci';
const DEPLOY_TOKEN = 'another token, with spaces';

function basic(userPass: string | Buffer): string {
  return `Basic ${Buffer.from(userPass).toString('base64')}`;
}

interface SigningKey {
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

interface TokenOptions {
  issuer?: string;
  audience?: string;
  /** Absolute expiry in unix seconds, or a relative jose time span; null for no exp claim. */
  exp?: number | string | null;
  kid?: string;
}

async function jwt(key: SigningKey, claims: JWTPayload, opts: TokenOptions = {}): Promise<string> {
  const builder = new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? key.jwk.kid ?? 'k1' })
    .setIssuer(opts.issuer ?? ISSUER)
    .setAudience(opts.audience ?? CLIENT_ID)
    .setSubject('user-1')
    .setIssuedAt();
  if (opts.exp !== null) builder.setExpirationTime(opts.exp ?? '5m');
  return builder.sign(key.privateKey);
}

/** A JWKS file of the given keys in its own temp directory (removed at teardown); returns its path. */
function jwksFile(t: Test, ...keys: SigningKey[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-jwks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'jwks.json');
  writeFileSync(path, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
  return path;
}

function tokenFileText(): string {
  return [
    '# static bearer tokens',
    '',
    `ci:${tokenDigest(CI_TOKEN).toUpperCase()}`,
    `  deploy : ${tokenDigest(DEPLOY_TOKEN)}  `,
  ].join('\r\n');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

for (const set of VECTOR_SETS) {
  t.test(`htpasswd file of the ${set.name} vectors`, { skip: set.skip }, async (t) => {
    authenticatorContract(t, `HtpasswdAuthenticator (${set.name} fixture)`, async () => ({
      authenticator: await HtpasswdAuthenticator.load(set.path('data', 'htpasswd')),
      good: [{ header: ADMIN, principal: { id: 'admin', kind: 'basic' } }],
      bad: [
        { label: 'wrong password', header: basic('admin:swordfish') },
        { label: 'empty password', header: basic('admin:') },
        { label: 'unknown user', header: basic('nobody:sw0rdf1sh') },
        { label: 'malformed base64', header: 'Basic !!!not-base64!!!' },
        { label: 'base64 without padding', header: 'Basic YWRtaW46c3cwcmRmMXNoMQ' },
        { label: 'no colon', header: basic('admin') },
        { label: 'empty user', header: basic(':sw0rdf1sh') },
        { label: 'not UTF-8', header: basic(Buffer.from([0x61, 0xff, 0x3a, 0x62])) },
        { label: 'bearer scheme', header: `Bearer ${CI_TOKEN}` },
      ],
    }));
  });
}

authenticatorContract(t, 'StaticTokenAuthenticator', async () => {
  await Promise.resolve();
  return {
    authenticator: StaticTokenAuthenticator.parse(tokenFileText(), 'test tokens'),
    good: [
      { header: `Bearer ${CI_TOKEN}`, principal: { id: 'ci', kind: 'token' } },
      { header: `Bearer ${DEPLOY_TOKEN}`, principal: { id: 'deploy', kind: 'token' } },
    ],
    bad: [
      { label: 'unknown token', header: 'Bearer not-a-known-token' },
      { label: 'the digest itself is not the token', header: `Bearer ${tokenDigest(CI_TOKEN)}` },
      { label: 'basic scheme', header: ADMIN },
    ],
  };
});

authenticatorContract(t, 'OidcAuthenticator (local JWKS)', async (t) => {
  const key = await signingKey('k1');
  const stranger = await signingKey('k1');
  const otherKid = await signingKey('k2');
  const now = Math.floor(Date.now() / 1000);
  const authenticator = await OidcAuthenticator.create({
    issuerUrl: ISSUER, clientId: CLIENT_ID, deviceUrl: `${ISSUER}/device`, jwksFile: jwksFile(t, key),
  });
  const hs256 = await new SignJWT({ sub: 'x' })
    .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
    .setIssuer(ISSUER).setAudience(CLIENT_ID).setExpirationTime('5m')
    .sign(new TextEncoder().encode('a shared secret of at least 32 bytes!'));
  const unsecured = new UnsecuredJWT({ sub: 'x' }).setIssuer(ISSUER).setAudience(CLIENT_ID).setExpirationTime('5m').encode();
  return {
    authenticator,
    good: [
      { header: `Bearer ${await jwt(key, { preferred_username: 'alice' })}`, principal: { id: `alice@${ISSUER}`, kind: 'oidc' } },
      { header: `Bearer ${await jwt(key, {})}`, principal: { id: `user-1@${ISSUER}`, kind: 'oidc' } },
    ],
    bad: [
      { label: 'expired', header: `Bearer ${await jwt(key, {}, { exp: now - 3600 })}` },
      { label: 'wrong audience', header: `Bearer ${await jwt(key, {}, { audience: 'someone-else' })}` },
      { label: 'wrong issuer', header: `Bearer ${await jwt(key, {}, { issuer: 'https://evil.test' })}` },
      { label: 'no exp claim', header: `Bearer ${await jwt(key, {}, { exp: null })}` },
      { label: 'signed by another key with the same kid', header: `Bearer ${await jwt(stranger, {})}` },
      { label: 'unknown kid', header: `Bearer ${await jwt(otherKid, {})}` },
      { label: 'HMAC algorithm', header: `Bearer ${hs256}` },
      { label: 'unsecured (alg none)', header: `Bearer ${unsecured}` },
      { label: 'not a JWT', header: 'Bearer abc.def' },
      { label: 'basic scheme', header: ADMIN },
    ],
  };
});

authenticatorContract(t, 'ChainAuthenticator (htpasswd + static tokens + OIDC)', async (t) => {
  const key = await signingKey('k1');
  const chain = new ChainAuthenticator([
    await HtpasswdAuthenticator.load(vec('data', 'htpasswd')),
    StaticTokenAuthenticator.parse(tokenFileText(), 'test tokens'),
    await OidcAuthenticator.create({ issuerUrl: ISSUER, clientId: CLIENT_ID, deviceUrl: `${ISSUER}/device`, jwksFile: jwksFile(t, key) }),
  ]);
  return {
    authenticator: chain,
    good: [
      { header: ADMIN, principal: { id: 'admin', kind: 'basic' } },
      { header: `Bearer ${CI_TOKEN}`, principal: { id: 'ci', kind: 'token' } },
      { header: `Bearer ${await jwt(key, { preferred_username: 'bob' })}`, principal: { id: `bob@${ISSUER}`, kind: 'oidc' } },
    ],
    bad: [
      { label: 'wrong password', header: basic('admin:nope') },
      { label: 'unknown bearer token', header: 'Bearer unknown-token' },
      { label: 'expired JWT', header: `Bearer ${await jwt(key, {}, { exp: Math.floor(Date.now() / 1000) - 3600 })}` },
    ],
  };
});

t.test('NoAuthenticator ignores credentials', async (t) => {
  const none = new NoAuthenticator();
  for (const header of [undefined, '', ADMIN, 'Basic garbage', 'Negotiate x']) {
    t.equal(await none.authenticate(header), undefined, String(header));
  }
});

t.test('HtpasswdAuthenticator loading', async (t) => {
  const fixture = await HtpasswdAuthenticator.load(vec('data', 'htpasswd'));
  t.equal(fixture.size, 1);

  const b = bcrypt.hashSync('pw', 4);
  const a = b.replace(/^\$2b\$/, '$2a$');
  const y = b.replace(/^\$2b\$/, '$2y$');
  const ok = await HtpasswdAuthenticator.parse(`# users\r\n\r\nbee:${b}\r\nay:${a}\r\nwhy:${y}\r\n`, 'test');
  t.equal(ok.size, 3);
  for (const user of ['bee', 'ay', 'why']) {
    t.same(await ok.authenticate(basic(`${user}:pw`)), { id: user, kind: 'basic' }, `${user} ($2${user[0] === 'b' ? 'b' : user[0] === 'a' ? 'a' : 'y'}$)`);
  }

  const unsupported: [string, RegExp][] = [
    ['apr:$apr1$abc$defghijklmnopqrstuvw', /test line 2: user "apr" has an unsupported Apache MD5 \(\$apr1\$\) hash; only bcrypt/],
    ['sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /user "sha" has an unsupported SHA-1 \(\{SHA\}\) hash/],
    ['crypt6:$6$salt$hash', /user "crypt6" has an unsupported SHA-crypt \(\$6\$\) hash/],
    ['plain:password', /user "plain" has an unsupported crypt or plain-text hash/],
    ['short:$2y$05$tooShort', /user "short" has an unsupported malformed bcrypt hash/],
    [`costly:${y.replace(/^\$2y\$04\$/, '$2y$99$')}`, /user "costly" has a bcrypt cost of 99/],
    [`costly:${y.replace(/^\$2y\$04\$/, '$2y$31$')}`, /test line 2: user "costly" has a bcrypt cost of 31; it must be 4 to 16/],
    [`costly:${y.replace(/^\$2y\$04\$/, '$2y$17$')}`, /test line 2: user "costly" has a bcrypt cost of 17; it must be 4 to 16/],
    [`cheap:${y.replace(/^\$2y\$04\$/, '$2y$03$')}`, /test line 2: user "cheap" has a bcrypt cost of 3; it must be 4 to 16/],
    [`bee:${b}`, /line 2: user "bee" appears twice/],
    ['no-colon-here', /line 2: expected user:hash/],
    [`:${b}`, /line 2: expected user:hash/],
  ];
  for (const [line, message] of unsupported) {
    await t.rejects(HtpasswdAuthenticator.parse(`bee:${b}\n${line}\n`, 'test'), { code: 'invalid_config', message }, line);
  }
  await t.rejects(HtpasswdAuthenticator.load('/nonexistent/htpasswd'), {
    code: 'invalid_config',
    message: /cannot read htpasswd file \/nonexistent\/htpasswd/,
  });
});

t.test('HtpasswdAuthenticator caches successful verifications only, bounded and expiring', async (t) => {
  const text = `u1:${bcrypt.hashSync('pw1', 4)}\nu2:${bcrypt.hashSync('pw2', 4)}\n`;
  let now = 1_000_000;
  const auth = await HtpasswdAuthenticator.parse(text, 'test', { cacheTtlMs: 1000, cacheMaxEntries: 1, now: () => now });
  await t.rejects(auth.authenticate(basic('u1:wrong')), { code: 'unauthenticated' });
  t.equal(auth.cacheSize, 0, 'failures are not cached');
  t.same(await auth.authenticate(basic('u1:pw1')), { id: 'u1', kind: 'basic' });
  t.equal(auth.cacheSize, 1);
  t.same(await auth.authenticate(basic('u1:pw1')), { id: 'u1', kind: 'basic' }, 'answered again');
  await t.rejects(auth.authenticate(basic('u1:pw2')), { code: 'unauthenticated' }, 'the cache never answers for other credentials');
  t.same(await auth.authenticate(basic('u2:pw2')), { id: 'u2', kind: 'basic' });
  t.equal(auth.cacheSize, 1, 'bounded by cacheMaxEntries');
  now += 1001;
  t.same(await auth.authenticate(basic('u2:pw2')), { id: 'u2', kind: 'basic' }, 'an expired entry is verified again');
  t.equal(auth.cacheSize, 1);

  const uncached = await HtpasswdAuthenticator.parse(text, 'test', { cacheTtlMs: 0 });
  t.same(await uncached.authenticate(basic('u1:pw1')), { id: 'u1', kind: 'basic' });
  t.equal(uncached.cacheSize, 0, 'a TTL of 0 turns the cache off');
});

t.test('StaticTokenAuthenticator parsing', async (t) => {
  const auth = StaticTokenAuthenticator.parse(tokenFileText(), 'test');
  t.equal(auth.size, 2);
  t.equal(tokenDigest('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const d = tokenDigest('x');
  const bad: [string, RegExp][] = [
    ['missing-colon', /t line 2: expected name:sha256hex-of-token/],
    ['short:abc123', /t line 2: expected name:sha256hex/],
    [`:${d}`, /t line 2: expected name:sha256hex/],
    [`two words:${d}`, /t line 2: expected name:sha256hex/],
    [`a:${tokenDigest('first')}`, /t line 2: name "a" appears twice/],
    [`b:${tokenDigest('first').toUpperCase()}`, /t line 2: "b" has the same token as "a"/],
  ];
  for (const [line, message] of bad) {
    t.throws(() => StaticTokenAuthenticator.parse(`a:${tokenDigest('first')}\n${line}`, 't'), { code: 'invalid_config', message }, line);
  }
  await t.rejects(StaticTokenAuthenticator.load('/nonexistent/tokens'), { code: 'invalid_config', message: /cannot read token file/ });
});

t.test('StaticTokenAuthenticator re-reads a changed file; an unusable one keeps the last good version and is reported', async (t) => {
  const path = join(t.testdir({ tokens: tokenFileText() }), 'tokens');
  const reported: BindleError[] = [];
  // The file is looked at once a second; the test moves that clock past each change.
  const clock = { now: 0 };
  const auth = await StaticTokenAuthenticator.load(path, (err) => reported.push(err), { now: () => clock.now });
  t.same(await auth.authenticate(`Bearer ${CI_TOKEN}`), { id: 'ci', kind: 'token' });
  writeFileSync(path, `deploy:${tokenDigest(DEPLOY_TOKEN)}\n`);
  clock.now = 999;
  t.same(await auth.authenticate(`Bearer ${CI_TOKEN}`), { id: 'ci', kind: 'token' }, 'within a second of the last look, the change is not seen yet');
  clock.now = 1000;
  await t.rejects(auth.authenticate(`Bearer ${CI_TOKEN}`), { code: 'unauthenticated' }, 'a removed token is refused a second after the last look');
  t.same(await auth.authenticate(`Bearer ${DEPLOY_TOKEN}`), { id: 'deploy', kind: 'token' });
  t.equal(auth.size, 1);
  t.same(reported, []);
  writeFileSync(path, `ci:${tokenDigest(CI_TOKEN)}\ndeploy:not-a-digest\n`);
  clock.now += 1000;
  await t.rejects(auth.authenticate(`Bearer ${CI_TOKEN}`), { code: 'unauthenticated' }, 'a malformed file does not take effect');
  t.same(await auth.authenticate(`Bearer ${DEPLOY_TOKEN}`), { id: 'deploy', kind: 'token' }, 'the last good version stays in force');
  t.match(reported, [{ code: 'invalid_config', message: `token file ${path} line 2: expected name:sha256hex-of-token (64 hex digits)` }]);
  rmSync(path);
  clock.now += 1000;
  t.same(await auth.authenticate(`Bearer ${DEPLOY_TOKEN}`), { id: 'deploy', kind: 'token' }, 'so does a removed file');
  t.match(reported[1], { code: 'invalid_config', message: `cannot read token file ${path}: ENOENT` });
  t.equal(reported.length, 2);
});

t.test('OidcAuthenticator principal ids and issuer spelling', async (t) => {
  const key = await signingKey('k1');
  const auth = await OidcAuthenticator.create({
    issuerUrl: `${ISSUER}/`, clientId: CLIENT_ID, deviceUrl: `${ISSUER}/device`, jwksFile: jwksFile(t, key),
  });
  const id = async (claims: JWTPayload, issuer = ISSUER): Promise<string | undefined> =>
    (await auth.authenticate(`Bearer ${await jwt(key, claims, { issuer })}`))?.id;
  t.equal(await id({ preferred_username: 'alice', email: 'a@x.test', email_verified: true }), `alice@${ISSUER}`);
  t.equal(await id({ email: 'a@x.test', email_verified: true }), `a@x.test@${ISSUER}`);
  t.equal(await id({ email: 'a@x.test' }), `user-1@${ISSUER}`, 'an unverified email is not used');
  t.equal(await id({ email: 'a@x.test', email_verified: false }), `user-1@${ISSUER}`);
  t.equal(await id({ preferred_username: 'alice' }, `${ISSUER}/`), `alice@${ISSUER}`, 'the issuer with a trailing slash is the same issuer, and the same id');
  t.equal(await id({ preferred_username: 'alice' }, ISSUER), `alice@${ISSUER}`);
  const unslashed = await OidcAuthenticator.create({ issuerUrl: ISSUER, clientId: CLIENT_ID, deviceUrl: `${ISSUER}/device`, jwksFile: jwksFile(t, key) });
  for (const iss of [ISSUER, `${ISSUER}/`]) {
    const principal = await unslashed.authenticate(`Bearer ${await jwt(key, { preferred_username: 'alice' }, { issuer: iss })}`);
    t.equal(principal?.id, `alice@${ISSUER}`, `configured without a slash, iss ${iss}`);
  }
  t.equal(auth.clientId, CLIENT_ID);
  t.equal(auth.deviceUrl, `${ISSUER}/device`);
  await t.rejects(auth.authenticate(`Bearer ${await jwt(key, {}, { exp: Math.floor(Date.now() / 1000) - 3600 })}`), {
    code: 'unauthenticated',
    message: 'bearer token has expired',
  });
  await t.rejects(auth.authenticate(`Bearer ${await jwt(key, {}, { audience: 'other' })}`), {
    code: 'unauthenticated',
    message: /bearer token rejected: .*aud/,
  });
});

t.test('OidcAuthenticator JWKS file errors are invalid_config', async (t) => {
  const dir = t.testdir({ 'bad.json': '{ not json', 'nokeys.json': '{"keys": "none"}' });
  const settings = { issuerUrl: ISSUER, clientId: CLIENT_ID, deviceUrl: `${ISSUER}/device` };
  await t.rejects(OidcAuthenticator.create({ ...settings, jwksFile: join(dir, 'absent.json') }), {
    code: 'invalid_config', message: /cannot read OIDC JWKS file .*absent\.json/,
  });
  await t.rejects(OidcAuthenticator.create({ ...settings, jwksFile: join(dir, 'bad.json') }), {
    code: 'invalid_config', message: /cannot read OIDC JWKS file .*bad\.json/,
  });
  await t.rejects(OidcAuthenticator.create({ ...settings, jwksFile: join(dir, 'nokeys.json') }), {
    code: 'invalid_config', message: /nokeys\.json is not a JSON Web Key Set/,
  });
});

t.test("OidcAuthenticator fetches the issuer's keys lazily through discovery, retrying after a failure", async (t) => {
  const key = await signingKey('k1');
  const requests: string[] = [];
  let discoveryUp = false;
  const issuer = await serveLocally(t, (req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/.well-known/openid-configuration') {
      if (!discoveryUp) return json(res, 500, { error: 'down' });
      return json(res, 200, { issuer, jwks_uri: `${issuer}/jwks`, token_endpoint: `${issuer}/token` });
    }
    if (req.url === '/jwks') return json(res, 200, { keys: [key.jwk] });
    return json(res, 404, {});
  });
  const auth = await OidcAuthenticator.create({ issuerUrl: issuer, clientId: CLIENT_ID, deviceUrl: `${issuer}/device` });
  t.same(requests, [], 'nothing is fetched at creation');
  const token = `Bearer ${await jwt(key, { preferred_username: 'carol' }, { issuer })}`;

  await t.rejects(auth.authenticate(token), { code: 'unavailable', message: /cannot fetch OIDC discovery document .*HTTP 500/ });
  discoveryUp = true;
  t.same(await auth.authenticate(token), { id: `carol@${issuer}`, kind: 'oidc' }, 'retried after the failure');
  t.same(await auth.authenticate(token), { id: `carol@${issuer}`, kind: 'oidc' });
  t.equal(await auth.tokenUrl(), `${issuer}/token`);
  t.same(
    requests.filter((r) => r === '/.well-known/openid-configuration').length,
    2,
    'discovery is fetched once after it succeeds',
  );
  await t.rejects(auth.authenticate(`Bearer ${await jwt(await signingKey('k1'), {}, { issuer })}`), { code: 'unauthenticated' });
});

t.test('ChainAuthenticator routing and messages', async (t) => {
  const htpasswd = await HtpasswdAuthenticator.load(vec('data', 'htpasswd'));
  const tokens = StaticTokenAuthenticator.parse(tokenFileText(), 'test');
  const key = await signingKey('k1');
  const oidc = await OidcAuthenticator.create({ issuerUrl: ISSUER, clientId: CLIENT_ID, deviceUrl: `${ISSUER}/device`, jwksFile: jwksFile(t, key) });

  const full = new ChainAuthenticator([htpasswd, tokens, oidc]);
  t.same(full.schemes, ['Basic', 'Bearer']);
  await t.rejects(full.authenticate('Digest x'), { code: 'unauthenticated', message: 'unsupported authorization scheme "Digest"; this server accepts Basic or Bearer' });
  await t.rejects(full.authenticate('Bearer unknown'), {
    code: 'unauthenticated',
    message: /^Bearer credentials were not accepted: unknown bearer token; malformed bearer token/,
  });

  const basicOnly = new ChainAuthenticator([htpasswd]);
  await t.rejects(basicOnly.authenticate(`Bearer ${CI_TOKEN}`), { code: 'unauthenticated', message: /this server accepts Basic$/ });
  await t.rejects(basicOnly.authenticate(basic('admin:nope')), { code: 'unauthenticated', message: 'invalid user name or password' });

  t.throws(() => new ChainAuthenticator([]), { code: 'invalid_config' });

  const issuer = await serveLocally(t, (_req, res) => json(res, 503, {}));
  const unreachable = await OidcAuthenticator.create({ issuerUrl: issuer, clientId: CLIENT_ID, deviceUrl: `${issuer}/device` });
  const withDeadIssuer = new ChainAuthenticator([tokens, unreachable]);
  t.same(await withDeadIssuer.authenticate(`Bearer ${CI_TOKEN}`), { id: 'ci', kind: 'token' }, 'the first to accept wins');
  await t.rejects(withDeadIssuer.authenticate('Bearer unknown'), { code: 'unauthenticated' }, 'a non-JWT never reaches the issuer');
  const wellFormed = `Bearer ${await jwt(key, {}, { issuer })}`;
  await t.rejects(withDeadIssuer.authenticate(wellFormed), { code: 'unavailable', message: /HTTP 503/ }, 'an unreachable issuer is not a rejection');
});

t.test('buildAuth follows the configuration', async (t) => {
  const dir = t.testdir({
    tokens: tokenFileText(), 'bad-htpasswd': 'admin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n', htpasswd: readFileSync(vec('data', 'htpasswd'), 'utf8'),
  });

  const open = await buildAuth(await loadServerConfig([], {}, dir));
  t.ok(open.authenticator instanceof NoAuthenticator);
  t.ok(open.authorizer instanceof AlwaysAuthorizer);
  t.equal(open.oidc, undefined);

  const argv = ['-i', '0.0.0.0:0', '--htpasswd-file', vec('data', 'htpasswd'), '--token-file', 'tokens'];
  const closed = await buildAuth(await loadServerConfig(argv, {}, dir));
  t.ok(closed.authenticator instanceof FailedAttemptLimiter, "the chain sits behind the failed-attempt limiter");
  t.ok(closed.authorizer instanceof AnonymousGetAuthorizer);
  t.same(await closed.authenticator.authenticate(ADMIN), { id: 'admin', kind: 'basic' });
  t.same(await closed.authenticator.authenticate(`Bearer ${CI_TOKEN}`), { id: 'ci', kind: 'token' });
  t.equal(closed.oidc, undefined);

  const key = await signingKey('k1');
  const oidcArgs = ['-i', '0.0.0.0:0', '--oidc-issuer-url', ISSUER, '--oidc-client-id', CLIENT_ID, '--oidc-device-url', `${ISSUER}/device`];
  const withOidc = await buildAuth(await loadServerConfig([...oidcArgs, '--oidc-jwks-file', jwksFile(t, key)], {}, dir));
  t.ok(withOidc.oidc instanceof OidcAuthenticator);
  t.equal(withOidc.oidc?.clientId, CLIENT_ID);
  t.same(await withOidc.authenticator.authenticate(`Bearer ${await jwt(key, {})}`), { id: `user-1@${ISSUER}`, kind: 'oidc' });

  const logged: { obj: unknown; msg: string | undefined }[] = [];
  const log = { error: (obj: unknown, msg?: string) => logged.push({ obj, msg }) };
  const clock = { now: 0 };
  const logging = await buildAuth(await loadServerConfig(['-i', '0.0.0.0:0', '--htpasswd-file', 'htpasswd', '--token-file', 'tokens'], {}, dir), log, { now: () => clock.now });
  writeFileSync(join(dir, 'tokens'), 'ci:abc\n');
  writeFileSync(join(dir, 'htpasswd'), 'admin:$apr1$abc$defghijklmnopqrstuvw\n');
  clock.now = 1000;
  t.same(await logging.authenticator.authenticate(`Bearer ${CI_TOKEN}`), { id: 'ci', kind: 'token' });
  t.same(await logging.authenticator.authenticate(ADMIN), { id: 'admin', kind: 'basic' });
  t.match(logged, [
    {
      obj: { file: join(dir, 'tokens'), err: { code: 'invalid_config', message: /tokens line 1: expected name:sha256hex/ } },
      msg: 'token file reload failed: the previous version stays in force',
    },
    {
      obj: { file: join(dir, 'htpasswd'), err: { code: 'invalid_config', message: /htpasswd line 1: user "admin" has an unsupported Apache MD5/ } },
      msg: 'htpasswd file reload failed: the previous version stays in force',
    },
  ], 'reload failures are logged at error, naming the file and the fault');

  await t.rejects(buildAuth(await loadServerConfig(['-i', '0.0.0.0:0', '--htpasswd-file', 'bad-htpasswd'], {}, dir)), {
    code: 'invalid_config',
    message: /bad-htpasswd line 1: user "admin" has an unsupported SHA-1/,
  });
});
