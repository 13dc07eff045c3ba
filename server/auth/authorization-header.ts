/**
 * Parsing of the HTTP Authorization header (RFC 7235 scheme + credentials) and of HTTP Basic
 * credentials (RFC 7617). Every malformed header is BindleError('unauthenticated'); a request
 * that sends the header more than once is BindleError('bad_request') (repeatedAuthorization).
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import { carriesCredentials, type AuthScheme } from './types.js';

/** A present Authorization header: the scheme in lowercase, as sent, and the credentials. */
export interface ParsedAuthorization {
  readonly scheme: string;
  readonly schemeAsSent: string;
  readonly credentials: string;
}

const HEADER = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:[ \t]+(.*))?$/s;

function unauthenticated(message: string): BindleError {
  return new BindleError('unauthenticated', message);
}

/**
 * Splits a header into scheme and credentials; undefined when it carries none
 * (carriesCredentials: no header, a blank one, or Basic with an empty user name and password),
 * which means anonymous. Throws unauthenticated when it has no valid scheme.
 */
export function parseAuthorization(header: string | undefined): ParsedAuthorization | undefined {
  if (!carriesCredentials(header)) return undefined;
  const trimmed = header.trim();
  const m = HEADER.exec(trimmed);
  if (m === null) throw unauthenticated('malformed Authorization header: expected "<scheme> <credentials>"');
  const schemeAsSent = m[1] ?? '';
  return { scheme: schemeAsSent.toLowerCase(), schemeAsSent, credentials: (m[2] ?? '').trim() };
}

/** The display name of a scheme: Basic, Bearer. */
export function schemeName(scheme: AuthScheme): string {
  return scheme === 'basic' ? 'Basic' : 'Bearer';
}

/** The credentials when the header uses `scheme`; otherwise throws unauthenticated naming what is accepted. */
export function credentialsFor(parsed: ParsedAuthorization, scheme: AuthScheme): string {
  if (parsed.scheme !== scheme) {
    throw unauthenticated(`unsupported authorization scheme "${parsed.schemeAsSent}"; use ${schemeName(scheme)}`);
  }
  if (parsed.credentials === '') throw unauthenticated(`${schemeName(scheme)} authorization without credentials`);
  return parsed.credentials;
}

/**
 * The bad_request refusal of a request that sends more than one Authorization header field, or
 * undefined when it sends at most one. Node's `request.headers` keeps the first such field and
 * drops the others, so the credentials a client meant could be ignored without a word; only the
 * raw header list (`rawHeaders`: name, value, name, value, ...) shows them all.
 */
export function repeatedAuthorization(rawHeaders: readonly string[]): BindleError | undefined {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') count++;
  }
  if (count <= 1) return undefined;
  return new BindleError('bad_request', `the request has ${count} Authorization headers: send one, with the credentials to use`);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes Basic credentials: canonical padded base64 of UTF-8 `user:password`, user non-empty. */
export function decodeBasic(credentials: string): { user: string; password: string } {
  if (!BASE64.test(credentials) || credentials.length % 4 !== 0) {
    throw unauthenticated('malformed Basic credentials: not base64');
  }
  const bytes = Buffer.from(credentials, 'base64');
  if (bytes.toString('base64') !== credentials) throw unauthenticated('malformed Basic credentials: not canonical base64');
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw unauthenticated('malformed Basic credentials: not UTF-8');
  }
  const colon = text.indexOf(':');
  if (colon < 0) throw unauthenticated('malformed Basic credentials: expected user:password');
  const user = text.slice(0, colon);
  if (user === '') throw unauthenticated('malformed Basic credentials: the user name is empty');
  return { user, password: text.slice(colon + 1) };
}
