/**
 * Error replies that never reach a route, answered with the same error body as every other:
 * requests Node's HTTP parser rejects (`clientError`: malformed, header overflow, header
 * timeout), an `Expect` other than 100-continue (`checkExpectation`, 417), an HTTP/1.1
 * request without a Host header (Node's own check is turned off so that this one answers), a
 * body with a Content-Encoding (415: bodies are never decoded, so an encoded one would be
 * parsed or stored as it is), and a Transfer-Encoding other than chunked (501, as RFC 9112
 * says: Node removes the chunked framing only, so `gzip, chunked` would be stored compressed).
 * No header field is dropped for being past Node's count limit: those checks see them all.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { renderDocument } from '../../core/codec/document-codec.js';
import { BindleError, type ErrorCode } from '../../core/errors/bindle-error.js';
import { CONTENT_TYPE, replyFormat } from './negotiation.js';

/** The error for a request Node's parser rejected. */
function parserError(err: NodeJS.ErrnoException): BindleError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new BindleError('request_timeout', 'the request headers did not arrive in time');
    case 'HPE_HEADER_OVERFLOW':
      return new BindleError('headers_too_large', 'the request headers are too large');
    default:
      return new BindleError('bad_request', `malformed HTTP request (${err.code ?? 'parse error'}): ${err.message}`);
  }
}

/** A whole HTTP/1.1 error response in TOML (nothing to negotiate with before headers are parsed). */
function rawErrorResponse(error: BindleError): string {
  const body = renderDocument({ error: error.message, code: error.code }, 'toml');
  return `HTTP/1.1 ${error.status} ${statusText(error.code)}\r\nContent-Type: ${CONTENT_TYPE.toml}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

function statusText(code: ErrorCode): string {
  return code.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
}

/** Sends every reply Node would send without a body with one instead. */
export function registerClientErrors(app: FastifyInstance): void {
  // Node keeps the first 1000 header fields of a request and drops the rest without a word, so a
  // check of one header (a second Authorization, a Content-Encoding) could be passed by sending it
  // after 1000 others: every field is kept instead, their total bounded by the parser's header
  // size limit (HPE_HEADER_OVERFLOW, 431 above).
  app.server.maxHeadersCount = 0;
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const error = new BindleError('expectation_failed', `unsupported Expect: ${JSON.stringify(request.headers.expect ?? '')} (only 100-continue is)`);
    const format = replyFormat(request.headers.accept);
    const body = renderDocument({ error: error.message, code: error.code }, format);
    response.writeHead(error.status, { 'content-type': CONTENT_TYPE[format], 'content-length': Buffer.byteLength(body), connection: 'close' });
    response.end(body);
  });
  app.addHook('onRequest', (request, _reply, done) => {
    const raw = request.raw;
    if (raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1 && raw.headers.host === undefined) {
      done(new BindleError('bad_request', 'the request has no Host header, which HTTP/1.1 requires'));
      return;
    }
    const encoding = raw.headers['content-encoding']?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      done(new BindleError('unsupported_media_type', `Content-Encoding ${JSON.stringify(encoding)} is not supported: send the body uncompressed`));
      return;
    }
    const transfer = raw.headers['transfer-encoding'];
    if (transfer !== undefined && transfer.trim().toLowerCase() !== 'chunked') {
      done(new BindleError('not_implemented', `Transfer-Encoding ${JSON.stringify(transfer)} is not supported: only chunked is`));
      return;
    }
    done();
  });
}

/**
 * The response under way on a socket, if any: Node's own `_httpMessage` (undocumented), which its
 * default clientError handling reads for the same purpose.
 */
export function responseInFlight(socket: Socket): ServerResponse | null | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
}

/**
 * Fastify's clientErrorHandler: answers what the parser rejected with an error body, then closes;
 * only closes when a response to the request has already begun (e.g. a refusal sent from the
 * headers before the parser failed on the body), so the client never gets two answers.
 */
export function clientErrorHandler(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error = parserError(err);
  this.log.info({ code: error.code, reason: err.message }, 'client error');
  if (socket.writable && responseInFlight(socket)?.headersSent !== true) socket.end(rawErrorResponse(error));
  else socket.destroy();
}
