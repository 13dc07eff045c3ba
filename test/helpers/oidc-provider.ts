/**
 * A real local HTTP process acting as an OIDC provider for login tests: discovery, key set,
 * device-authorization and token endpoints (device-code polls answered from a script, refresh
 * grants), issuing ES256-signed ID tokens for the audience CLIENT_ID. Closed at teardown.
 */
import type { ServerResponse } from 'node:http';
import type { Test } from 'tap';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { serveLocally } from './local-server.js';

/** The client id the provider issues ID tokens for (the server's --oidc-client-id). */
export const CLIENT_ID = 'bindle-cli';

/** A token-endpoint answer to one poll: an RFC 8628 error code, or success. */
export type PollAnswer = 'authorization_pending' | 'slow_down' | 'expired_token' | 'access_denied' | 'ok';

export interface Provider {
  origin: string;
  /** The answers the token endpoint gives to the next device-code polls, in order. */
  polls: PollAnswer[];
  /** The form of each token request, in order. */
  tokenRequests: URLSearchParams[];
  /** Refresh tokens the provider refuses (invalid_grant). */
  revoked: Set<string>;
  /** The interval the device endpoint announces (seconds). */
  interval: number;
  issued: number;
}

async function idToken(privateKey: CryptoKey, issuer: string, subject: string, expires: string): Promise<string> {
  return new SignJWT({ preferred_username: subject })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(issuer)
    .setAudience(CLIENT_ID)
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime(expires)
    .sign(privateKey);
}

export async function startProvider(t: Test): Promise<Provider> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
  const provider: Provider = { origin: '', polls: [], tokenRequests: [], revoked: new Set(), interval: 0, issued: 0 };
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const tokens = async (): Promise<Record<string, unknown>> => {
    provider.issued += 1;
    return {
      access_token: `access-${provider.issued}`,
      id_token: await idToken(privateKey, provider.origin, `user-${provider.issued}`, '5m'),
      refresh_token: `refresh-${provider.issued}`,
      token_type: 'Bearer',
      expires_in: 300,
    };
  };
  provider.origin = await serveLocally(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      void (async () => {
        if (req.url === '/.well-known/openid-configuration') {
          json(res, 200, { issuer: provider.origin, jwks_uri: `${provider.origin}/jwks`, token_endpoint: `${provider.origin}/token` });
        } else if (req.url === '/jwks') {
          json(res, 200, jwks);
        } else if (req.url === '/device' && req.method === 'POST') {
          json(res, 200, { device_code: 'dev-1', user_code: 'WDJB-MJHT', verification_uri: `${provider.origin}/activate`, expires_in: 600, interval: provider.interval });
        } else if (req.url === '/token' && req.method === 'POST') {
          const form = new URLSearchParams(body);
          provider.tokenRequests.push(form);
          if (form.get('grant_type') === 'refresh_token') {
            if (provider.revoked.has(form.get('refresh_token') ?? '')) json(res, 400, { error: 'invalid_grant', error_description: 'refresh token revoked' });
            else json(res, 200, await tokens());
            return;
          }
          const answer = provider.polls.shift() ?? 'ok';
          if (answer === 'ok') json(res, 200, await tokens());
          else json(res, 400, { error: answer });
        } else {
          res.writeHead(404).end();
        }
      })();
    });
  });
  return provider;
}

