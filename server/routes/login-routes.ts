/**
 * `/login` (only with OIDC configured): starts the OAuth2 device flow for a CLI, as the
 * reference does — asks the provider's device-authorization endpoint for a code and answers its
 * reply plus the `client_id` and `token_url` the client polls with.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BindleError } from '../../core/errors/bindle-error.js';
import { sendDocument } from '../http/reply.js';
import { onlyParams, single, type QueryParams } from '../http/request-parsing.js';

/** What /login needs from the OIDC configuration. */
export interface DeviceLogin {
  readonly clientId: string;
  readonly deviceUrl: string;
  /** The provider's token endpoint (from its discovery document). */
  tokenUrl(): Promise<string>;
}

const SCOPES = 'openid profile email offline_access';

function scalarFields(body: unknown): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (body === null || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body)) {
    if (typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v))) out[k] = v;
  }
  return out;
}

export function loginRoutes(app: FastifyInstance, opts: { login: DeviceLogin; timeoutMs?: number }): void {
  app.get('/login', async (request: FastifyRequest<{ Querystring: QueryParams }>, reply) => {
    onlyParams(request.query, ['provider']);
    if ((single(request.query, 'provider') ?? '') === '') {
      throw new BindleError('invalid_query', 'query parameter "provider" is required (e.g. /login?provider=oidc)');
    }
    let res: Response;
    try {
      res = await fetch(opts.login.deviceUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ client_id: opts.login.clientId, scope: SCOPES }).toString(),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new BindleError('unavailable', `the OIDC device authorization endpoint cannot be reached: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!res.ok) {
      throw new BindleError('unavailable', `the OIDC device authorization endpoint answered HTTP ${res.status}`);
    }
    const fields = scalarFields(await res.json().catch(() => undefined));
    if (typeof fields.device_code !== 'string' || typeof fields.user_code !== 'string') {
      throw new BindleError('unavailable', 'the OIDC device authorization endpoint gave no device_code/user_code');
    }
    return sendDocument(request, reply, 200, { ...fields, client_id: opts.login.clientId, token_url: await opts.login.tokenUrl() });
  });
}
