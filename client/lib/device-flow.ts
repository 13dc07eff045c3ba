/**
 * The client side of the OAuth 2.0 device authorization grant (RFC 8628) that `bindle login`
 * runs: reading the server's `/login` reply, polling the provider's token endpoint (honouring
 * `interval`, `slow_down`, `authorization_pending` and `expires_in`), and the refresh-token
 * grant (RFC 6749 §6) that renews a stored login. Only the provider's token endpoint is called
 * here; the server's `/login` is fetched by BindleClient.
 */
import { BindleError } from '../../core/errors/bindle-error.js';

/** A started device login: what the user is shown and what the client polls with. */
export interface DeviceAuthorization {
  readonly deviceCode: string;
  readonly userCode: string;
  /** Where the user enters `userCode`. */
  readonly verificationUri: string;
  /** The same page with the code filled in, when the provider offers it. */
  readonly verificationUriComplete?: string;
  /** How long the device code is valid (seconds). */
  readonly expiresInSec: number;
  /** The minimum wait between token requests (seconds; RFC 8628 default 5). */
  readonly intervalSec: number;
  readonly clientId: string;
  /** The provider's token endpoint. */
  readonly tokenUrl: string;
}

/** Tokens from the provider's token endpoint. `expiresAt` is in Unix seconds. */
export interface TokenSet {
  readonly accessToken: string;
  readonly idToken?: string;
  readonly refreshToken?: string;
  readonly expiresAt?: number;
}

/** Options of the token-endpoint calls. */
export interface TokenRequestOptions {
  /** Timeout of each HTTP request, in milliseconds (default 30000). */
  readonly timeoutMs?: number;
  /** Waits `ms` (default: a real timer). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** The current time in milliseconds (default Date.now). */
  readonly now?: () => number;
}

/** RFC 8628 §3.2: clients use 5 seconds when the provider gives no interval. */
export const DEFAULT_INTERVAL_SEC = 5;
/** RFC 8628 §3.5: `slow_down` adds 5 seconds to the interval for this and later requests. */
export const SLOW_DOWN_STEP_SEC = 5;

function field(doc: Record<string, unknown>, name: string): string | undefined {
  const value = doc[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function seconds(doc: Record<string, unknown>, name: string): number | undefined {
  const value = doc[name];
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function asRecord(doc: unknown): Record<string, unknown> {
  return doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : {};
}

/** Reads the server's `/login` reply; anything missing is `malformed_body`. */
export function parseDeviceAuthorization(reply: unknown): DeviceAuthorization {
  const doc = asRecord(reply);
  const required = ['device_code', 'user_code', 'verification_uri', 'client_id', 'token_url'] as const;
  const missing = required.filter((name) => field(doc, name) === undefined);
  if (missing.length > 0) throw new BindleError('malformed_body', `the server's login reply lacks ${missing.join(', ')}`);
  const tokenUrl = field(doc, 'token_url') ?? '';
  if (!URL.canParse(tokenUrl)) throw new BindleError('malformed_body', `the server's login reply has an invalid token_url ${JSON.stringify(tokenUrl)}`);
  const complete = field(doc, 'verification_uri_complete');
  return {
    deviceCode: field(doc, 'device_code') ?? '',
    userCode: field(doc, 'user_code') ?? '',
    verificationUri: field(doc, 'verification_uri') ?? '',
    ...(complete !== undefined ? { verificationUriComplete: complete } : {}),
    expiresInSec: seconds(doc, 'expires_in') ?? 600,
    intervalSec: seconds(doc, 'interval') ?? DEFAULT_INTERVAL_SEC,
    clientId: field(doc, 'client_id') ?? '',
    tokenUrl,
  };
}

type TokenReply = { kind: 'tokens'; tokens: TokenSet } | { kind: 'error'; error: string; description: string | undefined; status: number };

/** POSTs a form to the token endpoint and reads its JSON answer (RFC 6749 §5.1/§5.2). */
async function tokenRequest(tokenUrl: string, form: Record<string, string>, opts: TokenRequestOptions): Promise<TokenReply> {
  let res: Response;
  try {
    res = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(form).toString(),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err) {
    const why = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
    throw new BindleError('unavailable', `the OIDC token endpoint ${tokenUrl} cannot be reached: ${why}`, { cause: err });
  }
  const text = await res.text();
  let doc: Record<string, unknown>;
  try {
    doc = asRecord(JSON.parse(text));
  } catch {
    throw new BindleError('unavailable', `the OIDC token endpoint ${tokenUrl} answered HTTP ${res.status} without a JSON body`);
  }
  const error = field(doc, 'error');
  if (error !== undefined) return { kind: 'error', error, description: field(doc, 'error_description'), status: res.status };
  if (!res.ok) throw new BindleError('unavailable', `the OIDC token endpoint ${tokenUrl} answered HTTP ${res.status}`);
  const accessToken = field(doc, 'access_token');
  if (accessToken === undefined) throw new BindleError('malformed_body', `the OIDC token endpoint ${tokenUrl} gave no access_token`);
  const idToken = field(doc, 'id_token');
  const refreshToken = field(doc, 'refresh_token');
  const expiresIn = seconds(doc, 'expires_in');
  const now = (opts.now ?? Date.now)();
  return {
    kind: 'tokens',
    tokens: {
      accessToken,
      ...(idToken !== undefined ? { idToken } : {}),
      ...(refreshToken !== undefined ? { refreshToken } : {}),
      ...(expiresIn !== undefined ? { expiresAt: Math.floor(now / 1000) + expiresIn } : {}),
    },
  };
}

function providerRefusal(what: string, reply: { error: string; description: string | undefined }): BindleError {
  return new BindleError('unauthenticated', `${what}: ${reply.error}${reply.description !== undefined ? ` (${reply.description})` : ''}`);
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls the token endpoint until the user approves (the tokens), denies (`access_denied`) or
 * the code expires (`expired_token`, or `expires_in` has passed): waits `intervalSec` before
 * each request, keeps waiting on `authorization_pending`, and adds 5 seconds to the interval
 * on `slow_down`. A refusal is `unauthenticated`; an unreachable endpoint `unavailable`.
 * `onWait` is told each wait (seconds), e.g. for a progress line.
 */
export async function pollForTokens(
  auth: DeviceAuthorization,
  opts: TokenRequestOptions & { onWait?: (seconds: number, reason: 'pending' | 'slow_down') => void } = {},
): Promise<TokenSet> {
  const sleep = opts.sleep ?? realSleep;
  const now = opts.now ?? Date.now;
  const deadline = now() + auth.expiresInSec * 1000;
  let interval = auth.intervalSec;
  const form = { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: auth.deviceCode, client_id: auth.clientId };
  for (;;) {
    await sleep(interval * 1000);
    if (now() > deadline) throw new BindleError('unauthenticated', `the login code ${auth.userCode} expired before it was approved`);
    const reply = await tokenRequest(auth.tokenUrl, form, opts);
    if (reply.kind === 'tokens') return reply.tokens;
    if (reply.error === 'authorization_pending') {
      opts.onWait?.(interval, 'pending');
    } else if (reply.error === 'slow_down') {
      interval += SLOW_DOWN_STEP_SEC;
      opts.onWait?.(interval, 'slow_down');
    } else if (reply.error === 'expired_token') {
      throw new BindleError('unauthenticated', `the login code ${auth.userCode} expired before it was approved`);
    } else if (reply.error === 'access_denied') {
      throw new BindleError('unauthenticated', 'the login was denied at the provider');
    } else {
      throw providerRefusal('the OIDC provider refused the login', reply);
    }
  }
}

/**
 * Renews tokens with a refresh token (RFC 6749 §6). A provider that returns no new refresh token
 * keeps the old one valid, so it is carried over. A refusal (e.g. `invalid_grant`) is
 * `unauthenticated`.
 */
export async function refreshTokens(tokenUrl: string, clientId: string, refreshToken: string, opts: TokenRequestOptions = {}): Promise<TokenSet> {
  const reply = await tokenRequest(tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }, opts);
  if (reply.kind === 'error') throw providerRefusal('the OIDC provider refused to refresh the login', reply);
  return reply.tokens.refreshToken !== undefined ? reply.tokens : { ...reply.tokens, refreshToken };
}
