/**
 * Turning what goes wrong on the wire into BindleErrors: a non-2xx reply becomes the reply's own
 * `code` when it is one of the closed set (our server sends it), else a code derived from the
 * status (reference servers send only `error = "…"`); a failed connection, a timeout or a broken
 * transfer becomes `unavailable` naming the URL. Also says which failures are worth a retry.
 */
import { parseSyntax, type DocumentFormat } from '../../core/codec/document-codec.js';
import { BindleError, isErrorCode, type ErrorCode } from '../../core/errors/bindle-error.js';

/** The error code for an HTTP status when the reply carries no (known) code. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 406:
      return 'not_acceptable';
    case 409:
      return 'already_exists';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 410:
      return 'deleted';
    case 416:
      return 'range_not_satisfiable';
    case 422:
      return 'yanked_create';
    case 501:
      return 'not_implemented';
    case 507:
      return 'insufficient_storage';
    case 502:
    case 503:
    case 504:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal' : 'bad_request';
  }
}

/** The document format of a reply, from its Content-Type (TOML unless it says JSON). */
export function formatOfContentType(contentType: string | undefined): DocumentFormat {
  const essence = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  const [subtype = '', suffix] = essence.slice(essence.indexOf('/') + 1).split('+');
  return subtype === 'json' || suffix === 'json' ? 'json' : 'toml';
}

const MAX_MESSAGE_CHARS = 500;

/** What a server said in an error body: its `error` text and `code`, when it has them. */
export function readErrorBody(body: string, contentType: string | undefined): { message?: string; code?: ErrorCode } {
  const text = body.trim();
  if (text === '') return {};
  for (const format of orderedFormats(contentType)) {
    let parsed: unknown;
    try {
      parsed = parseSyntax(text, format);
    } catch {
      continue;
    }
    if (parsed === null || typeof parsed !== 'object') continue;
    const record = parsed as Record<string, unknown>;
    const out: { message?: string; code?: ErrorCode } = {};
    if (typeof record.error === 'string') out.message = record.error;
    if (isErrorCode(record.code)) out.code = record.code;
    if (out.message !== undefined || out.code !== undefined) return out;
  }
  // Not an error document (a proxy's HTML page, plain text): keep a short, single-line excerpt.
  const line = text.replace(/\s+/g, ' ');
  return { message: line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line };
}

function orderedFormats(contentType: string | undefined): DocumentFormat[] {
  return formatOfContentType(contentType) === 'json' ? ['json', 'toml'] : ['toml', 'json'];
}

/**
 * The BindleError for a non-2xx reply. `doing` says what was being done (`fetching invoice x/1.0.0`)
 * and prefixes the message; the server's `error` text follows it, without its `?yanked=true`
 * advice on a `yanked` reply (the CLI and the kubelet name their own flags).
 */
export function replyError(doing: string, status: number, body: string, contentType: string | undefined): BindleError {
  const said = readErrorBody(body, contentType);
  const code = said.code ?? codeForStatus(status);
  let detail = said.message ?? `the server answered HTTP ${status} without an error message`;
  // The server's advice is for HTTP callers (`?yanked=true`); each program names its own flag.
  if (code === 'yanked') detail = detail.replace(/\s*\([^()]*\?yanked=true[^()]*\)/, '');
  return new BindleError(code, `${doing}: ${detail}`);
}

const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN',
]);

const TRANSIENT_UNDICI = new Set([
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function errorCodeOf(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy-eyeballs connects fail with an AggregateError of one error per address.
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const innerCode = errorCodeOf(inner);
      if (innerCode !== undefined) return innerCode;
    }
  }
  return undefined;
}

/** True for failures of the connection or the transfer itself: refused, reset, timed out, cut short. */
export function isTransportFailure(err: unknown): boolean {
  const code = errorCodeOf(err);
  if (code === undefined) return false;
  return TRANSIENT_ERRNO.has(code) || TRANSIENT_UNDICI.has(code) || code.startsWith('HPE_');
}

/** OpenSSL's answer when the peer's first bytes are not a TLS record: it speaks plain HTTP. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

function describeTransportFailure(err: unknown, timeoutMs: number): string {
  const code = errorCodeOf(err);
  if (code !== undefined && NOT_TLS.has(code)) return 'the server does not speak TLS (use http:// instead of https://)';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `no reply within ${timeoutMs} ms`;
  if (code === 'UND_ERR_BODY_TIMEOUT') return `the transfer stalled for ${timeoutMs} ms`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `could not connect within ${timeoutMs} ms`;
  const message = err instanceof Error && err.message !== '' ? err.message : String(err);
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
}

/** `unavailable` for a transport failure talking to `url`. */
export function transportError(doing: string, url: string, err: unknown, timeoutMs: number): BindleError {
  return new BindleError('unavailable', `${doing}: cannot reach ${url}: ${describeTransportFailure(err, timeoutMs)}`, { cause: err });
}
