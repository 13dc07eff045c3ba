/**
 * The fast lane: answers the most frequent requests a registry gets — anonymous GETs and HEADs of
 * an invoice the index holds in memory, and of a parcel on it whose size (HEAD) or bytes (GET)
 * the parcel reader holds — before Fastify builds a request, runs its hooks and routes it.
 * Fastify's per-request work costs more than those answers themselves (docs/performance.md,
 * "Invoice and parcel GETs: the fast lane").
 *
 * It only ever answers 200 with what the `/v1/_i/*` route would send for the same request: the
 * same bytes and headers (./reply.ts's storedTextHeaders, ./parcel-reply.ts's
 * parcelReplyHeaders), a Date header (./date-header.ts), recorded in the route's HTTP metrics,
 * and, while requests are logged at `info`, Fastify's two log lines for it (`incoming request`,
 * `request completed`), written through Fastify's logger with the next id of the request ids
 * Fastify gives (./request-logger.ts's requestIdSource) and, behind trusted proxies, the client
 * address and host Fastify reads from their forwarding headers. Every request it cannot answer so
 * is handed to Fastify untouched, which is the only place that refuses or negotiates edge cases: a
 * request with credentials or more than one Authorization header, a query, a percent-encoded
 * path, a body, conditional headers, Range, no Host header; an invoice that is yanked, deleted,
 * absent or not cached, a parcel not on it or not remembered; an authorizer that refuses anonymous reads; a server that is closing; and every
 * request while the log level is more verbose than `info`. test/http/fast-lane.test.ts checks its
 * answers against the route's, byte for byte, and its log lines against Fastify's.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import proxyAddr from '@fastify/proxy-addr';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { repeatedAuthorization } from '../auth/authorization-header.js';
import { anonymousReadAllowed } from '../auth/request-auth.js';
import type { Authorizer } from '../auth/types.js';
import { carriesCredentials } from '../auth/types.js';
import type { AnswerRecorder } from '../metrics/http-metrics.js';
import type { BindleService } from '../service/bindle-service.js';
import type { StoredInvoice } from '../storage/invoice-index.js';
import { httpDate } from './date-header.js';
import { replyFormat } from './negotiation.js';
import { parcelReplyHeaders } from './parcel-reply.js';
import { preparedText, storedTextHeaders } from './reply.js';
import { parseInvoicePath } from './request-parsing.js';

export interface FastLaneOptions {
  readonly service: BindleService;
  readonly authorizer: Authorizer;
  /** Where the invoice routes are mounted (`/v1`). */
  readonly prefix: string;
  /** How requests are logged; absent when the server logs nothing. */
  readonly requestLog?: FastLaneRequestLog;
  /** Records an answer as the `/_i/*` route's (none when metrics are off). */
  readonly record?: AnswerRecorder;
}

/**
 * What the fast lane needs to log the requests it answers as Fastify logs them. Fastify writes a
 * request's lines through a child of its logger bound to `reqId` (its `requestIdLogLabel`, not
 * changed here); the lane writes `reqId` as the first field of each line instead, which pino puts
 * where the child's binding would be: the same bytes, without a child per request. No route sets
 * a log level or serializers of its own, which would make Fastify's lines differ.
 */
export interface FastLaneRequestLog {
  /** Fastify's logger (`app.log`): its level says whether requests are logged, its serializers how. */
  readonly logger: FastifyBaseLogger;
  /** The request's id, as Fastify gives it (its `genReqId`). */
  readonly requestId: () => string;
  /**
   * The proxies Fastify trusts (its `trustProxy`, addresses and CIDR ranges), if any: it then logs
   * the client address that their X-Forwarded-For names and the host their X-Forwarded-Host does.
   */
  readonly trustProxy?: readonly string[];
}

/** The client address and host Fastify logs for a request (its `request.ip`, `request.host`). */
interface ClientAddress {
  readonly ip: string | undefined;
  readonly host: string;
}

/** Reads a request's ClientAddress as Fastify does, given its Host header. */
type Addressing = (request: IncomingMessage, host: string) => ClientAddress;

/** What Fastify's `req` log serializer reads of its request. */
interface LoggedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly host: string;
  readonly ip: string | undefined;
  readonly socket: IncomingMessage['socket'];
}

/** A prepared 200 answer: its headers, and its body for a GET. */
interface Answer {
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer | string | undefined;
}

/** Levels more verbose than `info`, at which requests go to Fastify (other hooks may log too). */
const VERBOSE_LEVELS: ReadonlySet<string> = new Set(['debug', 'trace']);

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;
type CachedParcel = NonNullable<ReturnType<BindleService['cachedParcel']>>;

/**
 * Puts the fast lane in front of Fastify's request listener on `app.server`. Call it once every
 * route is added; requests injected with `app.inject` do not pass through it.
 */
export function registerFastLane(app: FastifyInstance, opts: FastLaneOptions): void {
  const listeners = app.server.listeners('request') as RequestListener[];
  const fastify = listeners[0];
  if (listeners.length !== 1 || fastify === undefined) throw new Error(`expected Fastify's one request listener, found ${listeners.length}`);
  const base = `${opts.prefix}/_i/`;
  const addressing = requestAddressing(opts.requestLog?.trustProxy);
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  /** Answers the request when it can (true), else leaves it untouched (false). */
  const answer = (request: IncomingMessage, response: ServerResponse): boolean => {
    const method = request.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = request.url ?? '';
    if (!url.startsWith(base)) return false;
    const headers = request.headers;
    if (
      closing || headers.host === undefined || carriesCredentials(headers.authorization) ||
      (headers.authorization !== undefined && repeatedAuthorization(request.rawHeaders) !== undefined) ||
      headers['if-none-match'] !== undefined || headers['if-match'] !== undefined ||
      headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0') ||
      headers['content-encoding'] !== undefined
    ) return false;
    // At `info` Fastify logs two lines per request, which the lane then writes as Fastify would;
    // at a more verbose level the request is left to Fastify.
    const log = opts.requestLog;
    const level = log?.logger.level;
    if (level !== undefined && VERBOSE_LEVELS.has(level)) return false;
    const logging = log !== undefined && level === 'info';
    const start = performance.now();
    let path;
    try {
      // A valid id (and a parcel's sha256, checked by cachedParcel) has none of the characters
      // that make Fastify's router read a path otherwise than as it is: `%` escapes, `?`, `#`, `;`.
      path = parseInvoicePath(url.slice(base.length));
    } catch {
      return false;
    }
    if (path.sha256 !== undefined && (headers.range !== undefined || headers['if-range'] !== undefined)) return false;
    if (!anonymousReadAllowed(request, opts.authorizer)) return false;
    const prepared = path.sha256 === undefined
      ? invoiceAnswer(opts.service.cachedInvoice(path.id), headers.accept)
      : parcelAnswer(path.sha256, opts.service.cachedParcel(path.id, path.sha256, method === 'GET'));
    if (prepared === undefined) return false;
    if (logging) logRequest(log.logger, log.requestId(), request, addressing(request, headers.host), response, start);
    response.writeHead(200, prepared.headers);
    if (method === 'HEAD') response.end();
    else response.end(prepared.body);
    opts.record?.(method, 200, performance.now() - start, request.socket);
    return true;
  };

  app.server.removeListener('request', fastify);
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    let answered: boolean;
    try {
      answered = answer(request, response);
    } catch (err) {
      // Fastify's path answers instead (with an error reply if the failure, of the index say,
      // recurs there); only a reply already begun here is cut off.
      if (response.headersSent) {
        response.destroy(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      answered = false;
    }
    if (!answered) fastify(request, response);
  });
}

/** The invoice's answer as sendStored (./reply.ts) sends it, when it is cached. */
function invoiceAnswer(stored: StoredInvoice | undefined, accept: string | undefined): Answer | undefined {
  if (stored === undefined) return undefined;
  const text = preparedText(stored, replyFormat(accept));
  return { headers: { date: httpDate(), ...storedTextHeaders(text), 'content-length': text.bytes }, body: text.body };
}

/** The whole parcel's answer as sendParcel (./parcel-reply.ts) sends it, when its size (HEAD) or bytes (GET) are in memory. */
function parcelAnswer(sha256: string, parcel: CachedParcel | undefined): Answer | undefined {
  if (parcel === undefined) return undefined;
  return {
    headers: { date: httpDate(), ...parcelReplyHeaders(parcel.label.mediaType), etag: `"${sha256}"`, 'content-length': parcel.size },
    body: parcel.bytes,
  };
}

/**
 * How Fastify reads a request's client address and host (lib/request.js): from the socket and the
 * Host header; behind trusted proxies, the address is the last one X-Forwarded-For names before an
 * untrusted hop and the host the last entry of X-Forwarded-Host when the peer is a trusted proxy.
 */
function requestAddressing(trustProxy: readonly string[] | undefined): Addressing {
  if (trustProxy === undefined || trustProxy.length === 0) return (request, host) => ({ ip: request.socket.remoteAddress, host });
  const trusted = proxyAddr.compile([...trustProxy]);
  return (request, host) => {
    const addresses = proxyAddr.all(request, trusted);
    const forwardedHost = request.headers['x-forwarded-host'];
    const peer = request.socket.remoteAddress;
    const viaProxy = typeof forwardedHost === 'string' && forwardedHost !== '' && peer !== undefined && trusted(peer, 0);
    return { ip: addresses[addresses.length - 1], host: viaProxy ? lastEntry(forwardedHost) : host };
  };
}

/** The last entry of a header that may have been sent more than once (Node joins them with commas). */
function lastEntry(value: string): string {
  return value.slice(value.lastIndexOf(',') + 1).trim();
}

/**
 * Logs the request as Fastify's log controller does: `incoming request` now, `request completed`
 * with the time since `start` in milliseconds once the response has finished (none if the
 * connection goes first). Fastify also logs `request errored` when a response emits an error,
 * which Node emits only for a write after the end: a fast answer writes once.
 */
function logRequest(log: FastifyBaseLogger, reqId: string, request: IncomingMessage, address: ClientAddress, response: ServerResponse, start: number): void {
  const req: LoggedRequest = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, host: address.host, ip: address.ip, socket: request.socket };
  log.info({ reqId, req }, 'incoming request');
  response.once('finish', () => log.info({ reqId, res: response, responseTime: performance.now() - start }, 'request completed'));
}
