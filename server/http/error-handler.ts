/**
 * The one error handler: turns whatever a route threw into `error = "…"` (plus our `code`) in the
 * negotiated format with the status from core/errors. Fastify's own errors are mapped onto the
 * closed code set; anything unexpected is logged and answered as a 500 without internals.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BindleError, HTTP_STATUS, isOutOfSpace, type ErrorCode } from '../../core/errors/bindle-error.js';
import { carriesCredentials } from '../auth/types.js';
import { sendDocument } from './reply.js';

const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_body',
  FST_ERR_VALIDATION: 'bad_request',
  FST_ERR_BAD_URL: 'bad_request',
};

/**
 * Maps any thrown value to a BindleError (unknown errors become `internal`). The error of
 * `request`'s own stream (Node's `aborted` when the client hangs up before its body is complete)
 * is the client's failure, not the server's: `bad_request`.
 */
export function toBindleError(err: unknown, request?: FastifyRequest): BindleError {
  if (err instanceof BindleError) return err;
  if (request !== undefined && err !== null && request.raw.errored === err) {
    return new BindleError('bad_request', 'the request body was cut off: the client closed the connection before it was complete', { cause: err });
  }
  if (isOutOfSpace(err)) {
    return new BindleError('insufficient_storage', 'the server is out of storage space: nothing was stored; try again later or tell its operator', { cause: err });
  }
  const fe = err as Partial<FastifyError>;
  const code = fe.code !== undefined ? FASTIFY_CODES[fe.code] : undefined;
  if (code !== undefined) return new BindleError(code, fe.message ?? code);
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const match = (Object.keys(HTTP_STATUS) as ErrorCode[]).find((c) => HTTP_STATUS[c] === fe.statusCode);
    return new BindleError(match ?? 'bad_request', fe.message ?? 'bad request');
  }
  return new BindleError('internal', 'internal server error', { cause: err });
}

/**
 * Errors Fastify answers before a route runs (a URL that does not decode, a media type it
 * cannot parse): given to Fastify as `frameworkErrors`, rendered like every other error.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void renderError(err, request, reply);
}

/**
 * Whether bytes of the request's body may still be on their way: it has one (a length above 0,
 * or chunked) not read to its end. A request without a body is whole once its headers are,
 * even before Node marks it complete, so the connection stays open for the requests behind it.
 */
function bodyMayFollow(raw: IncomingMessage): boolean {
  if (raw.complete) return false;
  const length = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && length.trim() !== '0');
}

/**
 * What every API's error reply does first (this handler's, the web UI's, the OCI API's): maps
 * `err` to a BindleError, logs it (at error for the server's own failures, at info for the
 * client's), and sets the headers every format shares (Connection: close for an unread upload,
 * Retry-After).
 */
export function recordError(err: unknown, request: FastifyRequest, reply: FastifyReply): BindleError {
  const bindleError = toBindleError(err, request);
  if (bindleError.code === 'internal') request.log.error({ err }, 'unhandled error');
  else if (bindleError.code === 'insufficient_storage') request.log.error({ err }, 'out of storage space');
  else request.log.info({ code: bindleError.code, reason: bindleError.message }, 'request failed');
  // A rejected upload may still be streaming: close the connection instead of draining it.
  if (bodyMayFollow(request.raw)) reply.header('connection', 'close');
  if (bindleError.retryAfterSeconds !== undefined) reply.header('retry-after', String(bindleError.retryAfterSeconds));
  return bindleError;
}

/**
 * What every Bindle error reply does before its body is rendered (by this handler, or by the web
 * UI's in its own format): recordError, then the Bindle API's WWW-Authenticate challenge.
 */
export function prepareErrorReply(err: unknown, request: FastifyRequest, reply: FastifyReply): BindleError {
  const bindleError = recordError(err, request, reply);
  const anonymousRefusal = bindleError.code === 'forbidden' && !carriesCredentials(request.headers.authorization);
  if (bindleError.code === 'unauthenticated' || anonymousRefusal) reply.header('www-authenticate', 'Basic realm="bindle", Bearer');
  return bindleError;
}

function renderError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const bindleError = prepareErrorReply(err, request, reply);
  return sendDocument(request, reply, bindleError.status, { error: bindleError.message, code: bindleError.code });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(renderError);
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    return sendDocument(request, reply, 404, { error: `no route for ${request.method} ${request.url}`, code: 'not_found' });
  });
}
