/**
 * Turning what goes wrong on the wire into BindleErrors: a non-2xx reply becomes the reply's own
 * `code` when it is one of the closed set (our server sends it), else a code derived from the
 * status (reference servers send only `error = "…"`); a reply that is not a Bindle error document
 * (an OCI error envelope, other JSON, an HTML page) is named as a non-Bindle reply with its useful
 * part; a failed connection, a timeout or a broken transfer becomes `unavailable` naming the URL.
 * Also says which failures are worth a retry.
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

/** A Bindle error document's `error` text and `code` (when it has them); undefined when the body is none. */
function bindleErrorDocument(text: string, contentType: string | undefined): { message?: string; code?: ErrorCode } | undefined {
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
  return undefined;
}

/** `text` on one line, cut to MAX_MESSAGE_CHARS. */
function excerpt(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
}

/** What a server said in an error body: its `error` text and `code`, when it has them. */
export function readErrorBody(body: string, contentType: string | undefined): { message?: string; code?: ErrorCode } {
  const text = body.trim();
  if (text === '') return {};
  // Not an error document (a proxy's HTML page, plain text): keep a short, single-line excerpt.
  return bindleErrorDocument(text, contentType) ?? { message: excerpt(text) };
}

/** The first error of an OCI error envelope (`{"errors":[{code,message}]}`) as `CODE: message`, if the text is one. */
export function ociEnvelopeMessage(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const errors = doc !== null && typeof doc === 'object' ? (doc as { errors?: unknown }).errors : undefined;
  const first: unknown = Array.isArray(errors) ? errors[0] : undefined;
  if (first === null || typeof first !== 'object') return undefined;
  const { code, message } = first as { code?: unknown; message?: unknown };
  const parts = [code, message].filter((x): x is string => typeof x === 'string' && x !== '');
  return parts.length === 0 ? undefined : parts.join(': ');
}

/**
 * The useful part of an error body that is a document but not a Bindle error document, which
 * says the request reached something other than a Bindle API: an OCI error envelope's first
 * error (`OCI error CODE: message`), an HTML page's title (or `an HTML page`), or `a JSON
 * document`. Undefined for a Bindle error document, plain text and an empty body.
 */
export function foreignReplyPart(body: string, contentType: string | undefined): string | undefined {
  const text = body.trim();
  if (text === '' || bindleErrorDocument(text, contentType) !== undefined) return undefined;
  const oci = ociEnvelopeMessage(text);
  if (oci !== undefined) return `OCI error ${oci}`;
  const essence = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (essence === 'text/html' || essence === 'application/xhtml+xml' || /^<(!doctype\s+html|html)[\s>]/i.test(text)) {
    const title = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(text)?.[1]?.replace(/<[^>]*>/g, '');
    return title !== undefined && title.trim() !== '' ? `an HTML page titled "${excerpt(title)}"` : 'an HTML page';
  }
  try {
    JSON.parse(text);
    return 'a JSON document';
  } catch {
    return undefined;
  }
}

/** The phrase replyError puts in the message of a reply that is not from a Bindle API (see foreignReplyPart). */
export const NON_BINDLE_REPLY = 'with a non-Bindle reply';

function orderedFormats(contentType: string | undefined): DocumentFormat[] {
  return formatOfContentType(contentType) === 'json' ? ['json', 'toml'] : ['toml', 'json'];
}

/**
 * The BindleError for a non-2xx reply. `doing` says what was being done (`fetching invoice x/1.0.0`)
 * and prefixes the message; the server's `error` text follows it, without its `?yanked=true`
 * advice on a `yanked` reply (the CLI and the kubelet name their own flags). A reply that is a
 * document but not a Bindle error document (foreignReplyPart) is said to be one, on one line:
 * `the server at <url> answered HTTP <status> with a non-Bindle reply: <its useful part>`; its
 * code comes from the status.
 */
export function replyError(doing: string, status: number, body: string, contentType: string | undefined, url?: string): BindleError {
  const foreign = foreignReplyPart(body, contentType);
  if (foreign !== undefined) {
    const server = url === undefined ? 'the server' : `the server at ${url}`;
    return new BindleError(codeForStatus(status), `${doing}: ${server} answered HTTP ${status} ${NON_BINDLE_REPLY}: ${foreign}`);
  }
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
