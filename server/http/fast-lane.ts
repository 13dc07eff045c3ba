/**
 * The fast lane: answers the most frequent requests a registry gets — anonymous GETs and HEADs of
 * an invoice the index holds in memory, and of a parcel on it whose size (HEAD) or bytes (GET)
 * the parcel reader holds — before Fastify builds a request, runs its hooks and routes it.
 * Fastify's per-request work costs more than those answers themselves (docs/performance.md,
 * "Invoice and parcel GETs: the fast lane").
 *
 * It only ever answers 200 with what the `/v1/_i/*` route would send for the same request: the
 * same bytes and headers (./reply.ts's storedTextHeaders, ./parcel-reply.ts's
 * parcelReplyHeaders), a Date header (./date-header.ts), recorded in the route's HTTP metrics.
 * Every request it cannot answer so is handed to Fastify untouched, which is the only place that
 * refuses, negotiates edge cases or logs: a request with credentials, a query, a
 * percent-encoded path, a body, conditional headers, Range, no Host header; an invoice that is
 * yanked, deleted, absent or not cached, a parcel not on it or not remembered; an authorizer that
 * refuses anonymous reads; a server that is closing; and every request while requests are logged
 * (at `info` or more verbose), since Fastify logs each one. test/http/fast-lane.test.ts
 * checks its answers against the route's, byte for byte.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
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
  /** Whether Fastify logs requests now (then every request goes to Fastify). */
  readonly requestsLogged: () => boolean;
  /** Records an answer as the `/_i/*` route's (none when metrics are off). */
  readonly record?: AnswerRecorder;
}

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
      headers['if-none-match'] !== undefined || headers['if-match'] !== undefined ||
      headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0') ||
      headers['content-encoding'] !== undefined || opts.requestsLogged()
    ) return false;
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
    const answered = path.sha256 === undefined
      ? answerInvoice(opts.service.cachedInvoice(path.id), method, headers.accept, response)
      : answerParcel(path.sha256, opts.service.cachedParcel(path.id, path.sha256, method === 'GET'), method, response);
    if (answered) opts.record?.(method, 200, performance.now() - start, request.socket);
    return answered;
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

/** Sends the invoice as sendStored (./reply.ts) would, when it is cached. */
function answerInvoice(stored: StoredInvoice | undefined, method: string, accept: string | undefined, response: ServerResponse): boolean {
  if (stored === undefined) return false;
  const text = preparedText(stored, replyFormat(accept));
  return sendWhole(response, method, { date: httpDate(), ...storedTextHeaders(text), 'content-length': text.bytes }, text.body);
}

/** Sends the whole parcel as sendParcel (./parcel-reply.ts) would, when its size (HEAD) or bytes (GET) are in memory. */
function answerParcel(sha256: string, parcel: CachedParcel | undefined, method: string, response: ServerResponse): boolean {
  if (parcel === undefined) return false;
  const headers = { date: httpDate(), ...parcelReplyHeaders(parcel.label.mediaType), etag: `"${sha256}"`, 'content-length': parcel.size };
  return sendWhole(response, method, headers, parcel.bytes);
}

/** Answers 200 with `headers`, and `body` unless the request is a HEAD; true (answered). */
function sendWhole(response: ServerResponse, method: string, headers: OutgoingHttpHeaders, body: Buffer | string | undefined): boolean {
  response.writeHead(200, headers);
  if (method === 'HEAD') response.end();
  else response.end(body);
  return true;
}
