/**
 * `/login`: only present with OIDC configured; starts the device flow against the provider's
 * device-authorization endpoint (a local fake provider here) and adds client_id and token_url.
 */
import t, { type Test } from 'tap';
import type { IncomingMessage, ServerResponse } from 'node:http';
import TOML from '@iarna/toml';
import { serveLocally } from '../helpers/local-server.js';
import { makeTestApp } from '../helpers/test-app.js';

async function fakeProvider(t: Test): Promise<{ origin: string; requests: string[] }> {
  const requests: string[] = [];
  const origin = await serveLocally(t, (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(`${req.method ?? ''} ${req.url ?? ''} ${body}`);
      if (req.url === '/device' && req.method === 'POST') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ device_code: 'dev-123', user_code: 'ABCD-EFGH', verification_uri: 'https://id.example/activate', expires_in: 600, interval: 5 }));
      } else {
        res.writeHead(500).end();
      }
    });
  });
  return { origin, requests };
}

t.test('without OIDC there is no /login', async (t) => {
  const ta = await makeTestApp(t);
  const res = await ta.app.inject({ url: '/v1/login?provider=oidc' });
  t.equal(res.statusCode, 404);
});

t.test('/login starts the device flow', async (t) => {
  const provider = await fakeProvider(t);
  const ta = await makeTestApp(t, {
    login: { clientId: 'bindle-cli', deviceUrl: `${provider.origin}/device`, tokenUrl: async () => `${provider.origin}/token` },
  });
  let res = await ta.app.inject({ url: '/v1/login?provider=oidc', headers: { accept: 'application/json' } });
  t.equal(res.statusCode, 200, res.body);
  t.same(JSON.parse(res.body), {
    device_code: 'dev-123', user_code: 'ABCD-EFGH', verification_uri: 'https://id.example/activate', expires_in: 600, interval: 5,
    client_id: 'bindle-cli', token_url: `${provider.origin}/token`,
  });
  t.match(provider.requests[0], /^POST \/device client_id=bindle-cli&scope=openid\+profile\+email\+offline_access$/);
  res = await ta.app.inject({ url: '/v1/login?provider=oidc' });
  t.equal((TOML.parse(res.body) as { user_code: string }).user_code, 'ABCD-EFGH', 'TOML by default');
  res = await ta.app.inject({ url: '/v1/login' });
  t.equal(res.statusCode, 400, 'provider is required');
});

t.test('/login when the provider is down', async (t) => {
  const provider = await fakeProvider(t);
  const ta = await makeTestApp(t, {
    login: { clientId: 'bindle-cli', deviceUrl: `${provider.origin}/broken`, tokenUrl: async () => `${provider.origin}/token` },
  });
  const res = await ta.app.inject({ url: '/v1/login?provider=oidc' });
  t.equal(res.statusCode, 503);
  t.match(res.body, /answered HTTP 500/);
});
