/**
 * Issue 11: the failed-attempt limits and the trusted reverse proxies come from the server
 * configuration. Behind a trusted proxy the limiter keys on the client address that the proxy's
 * X-Forwarded-For names; from any other peer the header is ignored, so forging it neither dodges
 * the limit nor locks anybody else out. The server is assembled as the entry point does it
 * (loadServerConfig → openServer) and driven with app.inject, which sets the peer address.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import TOML from '@iarna/toml';
import t, { type Test } from 'tap';
import type { ErrorReply } from '../../schema/index.js';
import { tokenDigest } from '../../server/auth/index.js';
import { loadServerConfig } from '../../server/config/server-config.js';
import { openServer, type RunningServer } from '../../server/server-runtime.js';

const GOOD = 'the right token';

async function startServer(t: Test, extraArgs: string[]): Promise<RunningServer> {
  const dir = t.testdir();
  writeFileSync(join(dir, 'tokens'), `ci:${tokenDigest(GOOD)}\n`);
  const argv = ['-d', join(dir, 'data'), '-i', '127.0.0.1:0', '--token-file', join(dir, 'tokens'), '--log-level', 'silent', ...extraArgs];
  const server = await openServer(await loadServerConfig(argv, {}, dir), { hostLabel: 'Test Host <host@bindle.test>' });
  t.teardown(() => server.close());
  return server;
}

/** A search with a bearer token, from peer `from`, optionally carrying X-Forwarded-For. */
async function search(server: RunningServer, from: string, token: string, forwardedFor?: string): Promise<{ status: number; message: string }> {
  const res = await server.app.inject({
    method: 'GET',
    url: '/v1/_q',
    remoteAddress: from,
    headers: { authorization: `Bearer ${token}`, ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }) },
  });
  const message = res.statusCode === 200 ? '' : (TOML.parse(res.body) as unknown as ErrorReply).error;
  return { status: res.statusCode, message };
}

t.test('behind a trusted proxy, failed attempts count against the forwarded client address', async (t) => {
  const server = await startServer(t, ['--trust-proxy', '10.0.0.0/24', '--auth-max-failures', '2', '--auth-failure-window', '60s']);
  const proxy = '10.0.0.7';
  t.equal((await search(server, proxy, 'guess 1', '203.0.113.5')).status, 401);
  t.equal((await search(server, proxy, 'guess 2', '203.0.113.5')).status, 401);
  const refused = await search(server, proxy, GOOD, '203.0.113.5');
  t.equal(refused.status, 429, 'the third attempt of that client is refused, even with the right token');
  t.match(refused.message, /from 203\.0\.113\.5;/, 'the limit names the client, not the proxy');
  t.equal((await search(server, proxy, 'guess', '203.0.113.6')).status, 401, 'another client behind the same proxy is not limited');
  t.equal((await search(server, proxy, GOOD, '203.0.113.6')).status, 200);
  t.equal((await search(server, proxy, GOOD, '198.51.100.1, 203.0.113.6')).status, 200, 'the address the trusted proxy saw counts, not what the client claimed');
});

t.test('from an untrusted peer X-Forwarded-For is ignored: the peer address is limited', async (t) => {
  const server = await startServer(t, ['--trust-proxy', '10.0.0.1', '--auth-max-failures', '2']);
  const peer = '10.0.0.2';
  t.equal((await search(server, peer, 'guess 1', '198.51.100.1')).status, 401);
  t.equal((await search(server, peer, 'guess 2', '198.51.100.2')).status, 401);
  const refused = await search(server, peer, 'guess 3', '198.51.100.3');
  t.equal(refused.status, 429, 'a new forged address per attempt does not dodge the limit');
  t.match(refused.message, /from 10\.0\.0\.2;/);
  t.equal((await search(server, '10.0.0.3', GOOD, peer)).status, 200, 'naming a locked-out address in the header locks nobody out');
});

t.test('without --trust-proxy no proxy is trusted; the default limit is 10 failures', async (t) => {
  const server = await startServer(t, []);
  for (let i = 0; i < 10; i++) t.equal((await search(server, '127.0.0.1', `guess ${i}`, `198.51.100.${i}`)).status, 401);
  const refused = await search(server, '127.0.0.1', GOOD, '198.51.100.99');
  t.equal(refused.status, 429);
  t.match(refused.message, /from 127\.0\.0\.1;/);
});
