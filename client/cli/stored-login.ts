/**
 * The token file `bindle login` writes (TOML, mode 0600, written atomically): the provider's
 * tokens, their expiry, and the client id and token URL needed to refresh them. Before a
 * command uses a stored login whose token has expired (or expires within a minute), it is
 * renewed with the refresh token and the file rewritten. The bearer token sent is `id_token`
 * (what the reference CLI sends, and the token whose audience is the server's client id), else
 * `access_token`; settings.ts `tokenFromFile` reads it.
 */
import { readFile } from 'node:fs/promises';
import { BindleError } from '../../core/errors/bindle-error.js';
import { parseSyntax, renderDocument } from '../../core/codec/document-codec.js';
import { writeFileAtomic } from '../../core/fs-atomic.js';
import { refreshTokens, type TokenRequestOptions, type TokenSet } from '../lib/device-flow.js';

/** A stored login: the tokens plus where and as whom to refresh them. */
export interface StoredLogin extends TokenSet {
  readonly clientId: string;
  readonly tokenUrl: string;
}

/** A token is renewed this long before it expires, so that it does not expire in flight. */
export const REFRESH_MARGIN_SEC = 60;

/** Writes `login` to `path` (mode 0600, atomically). */
export async function writeStoredLogin(path: string, login: StoredLogin): Promise<void> {
  const doc = {
    token_type: 'Bearer',
    ...(login.idToken !== undefined ? { id_token: login.idToken } : {}),
    access_token: login.accessToken,
    ...(login.refreshToken !== undefined ? { refresh_token: login.refreshToken } : {}),
    ...(login.expiresAt !== undefined ? { expires_at: login.expiresAt } : {}),
    client_id: login.clientId,
    token_url: login.tokenUrl,
  };
  await writeFileAtomic(path, renderDocument(doc, 'toml'), 0o600);
}

/** The stored login in `text`, or undefined when the file is not one (a bare token, another TOML file). */
export function parseStoredLogin(text: string): StoredLogin | undefined {
  let doc: unknown;
  try {
    doc = parseSyntax(text, 'toml');
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== 'object') return undefined;
  const d = doc as Record<string, unknown>;
  const str = (name: string): string | undefined => (typeof d[name] === 'string' && d[name] !== '' ? d[name] : undefined);
  const accessToken = str('access_token');
  const clientId = str('client_id');
  const tokenUrl = str('token_url');
  if (accessToken === undefined || clientId === undefined || tokenUrl === undefined) return undefined;
  const idToken = str('id_token');
  const refreshToken = str('refresh_token');
  const expiresAt = d.expires_at;
  return {
    accessToken,
    clientId,
    tokenUrl,
    ...(idToken !== undefined ? { idToken } : {}),
    ...(refreshToken !== undefined ? { refreshToken } : {}),
    ...(typeof expiresAt === 'number' && Number.isSafeInteger(expiresAt) ? { expiresAt } : {}),
  };
}

/**
 * Renews the login stored at `path` when it has expired or is about to (and has a refresh
 * token), rewriting the file; does nothing for a file that is not a stored login, a login that
 * is still valid, or a missing file. Returns true when it refreshed. A refused or failed refresh
 * is an error telling the user to run `bindle login` again.
 */
export async function refreshStoredLogin(path: string, opts: TokenRequestOptions = {}): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return false;
  }
  const login = parseStoredLogin(text);
  if (login?.expiresAt === undefined) return false;
  const nowSec = Math.floor((opts.now ?? Date.now)() / 1000);
  if (login.expiresAt > nowSec + REFRESH_MARGIN_SEC) return false;
  if (login.refreshToken === undefined) {
    throw new BindleError('unauthenticated', `the login in ${path} has expired and cannot be refreshed: run 'bindle login' again`);
  }
  let tokens: TokenSet;
  try {
    tokens = await refreshTokens(login.tokenUrl, login.clientId, login.refreshToken, opts);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new BindleError('unauthenticated', `the login in ${path} has expired and could not be refreshed (${why}): run 'bindle login' again`, { cause: err });
  }
  await writeStoredLogin(path, { ...tokens, clientId: login.clientId, tokenUrl: login.tokenUrl });
  return true;
}
