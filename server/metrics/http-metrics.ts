/**
 * Records every answered HTTP request into ServerMetrics: count and duration by method, route
 * pattern (Fastify's, e.g. `/v1/_i/*`; `unmatched` when no route matched — never a bindle name)
 * and status, and the bytes the connection carried for it.
 *
 * Cheap on the hot path: each route gets an onResponse hook of its own when it is added, which
 * knows the route's pattern and keeps the series it has recorded into (by method and status),
 * so a request neither reads `request.routeOptions` (an object built per call) nor looks its
 * labels up in the families; one app-level hook records the requests no route matched (Fastify's
 * 404 handlers), and the `frameworkErrors` handler those Fastify answers outside any route
 * context (malformed URLs); requests answered outside Fastify (../http/fast-lane.ts) are
 * recorded as their route's through `HttpRecorders.route`. Recording is plain additions (./plain-metrics.ts), and bytes
 * are the differences of the socket's own counters since the connection's previous request
 * (headers included), so no stream is wrapped or listened to.
 */
import type { Socket } from 'node:net';
import { finished } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onResponseHookHandler } from 'fastify';
import type { CounterSeries, HistogramSeries } from './plain-metrics.js';
import type { ServerMetrics } from './server-metrics.js';

/** The label used for requests no route matched (404s of unknown paths, malformed URLs). */
export const UNMATCHED_ROUTE = 'unmatched';

/** The socket counters already attributed to earlier requests on the same connection. */
interface SocketMark {
  read: number;
  written: number;
}

/** The series of one method, route and status. */
interface StatusSeries {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
}

/**
 * Records the requests of one route label. Series are created when first recorded into (as the
 * families would create them), never ahead, so a route nobody asked for shows no series.
 */
class RouteRecorder {
  readonly #metrics: ServerMetrics;
  readonly #marks: WeakMap<Socket, SocketMark>;
  readonly #route: string;
  /** By method, then by status code. */
  readonly #series = new Map<string, Map<number, StatusSeries>>();
  #received: CounterSeries | undefined;
  #sent: CounterSeries | undefined;

  constructor(metrics: ServerMetrics, marks: WeakMap<Socket, SocketMark>, route: string) {
    this.#metrics = metrics;
    this.#marks = marks;
    this.#route = route;
  }

  record(request: FastifyRequest, reply: FastifyReply): void {
    this.recordAnswer(request.method, reply.statusCode, reply.elapsedTime, request.raw.socket);
  }

  /** Records one answered request: its method, status, time taken (ms) and the connection it came on. */
  recordAnswer(method: string, status: number, elapsedMs: number, socket: Socket | null): void {
    const metrics = this.#metrics;
    let byStatus = this.#series.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#series.set(method, byStatus);
    }
    let series = byStatus.get(status);
    if (series === undefined) {
      const label = String(status);
      series = {
        requests: metrics.httpRequests.series(method, this.#route, label),
        duration: metrics.httpDuration.series(method, this.#route, label),
      };
      byStatus.set(status, series);
    }
    series.requests.value++;
    metrics.httpDuration.observe(series.duration, elapsedMs / 1000);
    this.#countBytes(socket);
  }

  #countBytes(socket: Socket | null): void {
    if (socket === null) return;
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (typeof read !== 'number' || typeof written !== 'number') return;
    let mark = this.#marks.get(socket);
    if (mark === undefined) {
      mark = { read: 0, written: 0 };
      this.#marks.set(socket, mark);
    }
    if (read > mark.read) (this.#received ??= this.#metrics.httpReceivedBytes.series(this.#route)).value += read - mark.read;
    if (written > mark.written) (this.#sent ??= this.#metrics.httpSentBytes.series(this.#route)).value += written - mark.written;
    mark.read = read;
    mark.written = written;
  }
}

/** Records a request Fastify answers outside every route context, once its answer is sent. */
export type UnroutedRecorder = (request: FastifyRequest, reply: FastifyReply) => void;

/**
 * Records, as one route's, a request answered outside Fastify (../http/fast-lane.ts),
 * once its answer is written: method, status, time taken (ms) and its connection.
 */
export type AnswerRecorder = (method: string, status: number, elapsedMs: number, socket: Socket | null) => void;

/** What registerHttpMetrics gives the requests its hooks do not see. */
export interface HttpRecorders {
  /** For Fastify's `frameworkErrors` handler. */
  readonly unrouted: UnroutedRecorder;
  /** For the requests of the route `url` (as Fastify names it, prefix included) answered outside Fastify. */
  route(url: string): AnswerRecorder;
}

/**
 * Adds the recording hooks to `app`. Call it before any route is added: a route records only
 * through the hook it gets when added (buildApp calls this before its first route). Returns the
 * recorders of the requests no hook sees: those Fastify's `frameworkErrors` handler answers
 * (malformed URLs, over-long parameters; recorded as unmatched), and those answered outside
 * Fastify (recorded as their route's).
 */
export function registerHttpMetrics(app: FastifyInstance, metrics: ServerMetrics): HttpRecorders {
  const marks = new WeakMap<Socket, SocketMark>();
  const recorders = new Map<string, RouteRecorder>();
  const recorderOf = (route: string): RouteRecorder => {
    let recorder = recorders.get(route);
    if (recorder === undefined) {
      recorder = new RouteRecorder(metrics, marks, route);
      recorders.set(route, recorder);
    }
    return recorder;
  };

  app.addHook('onRoute', (route) => {
    const recorder = recorderOf(route.url);
    const hook: onResponseHookHandler = (request, reply, done) => {
      recorder.record(request, reply);
      done();
    };
    const existing = route.onResponse === undefined ? [] : Array.isArray(route.onResponse) ? route.onResponse : [route.onResponse];
    route.onResponse = [...existing, hook];
  });

  const unmatched = recorderOf(UNMATCHED_ROUTE);
  // Fastify's 404 contexts (and the one malformed URLs are answered in) have no route URL and
  // no route-level hooks: this app-level hook is theirs; a matched route's own hook records it.
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.is404) unmatched.record(request, reply);
    done();
  });
  return {
    unrouted: (request, reply) => {
      finished(reply.raw, () => {
        unmatched.record(request, reply);
      });
    },
    route: (url) => {
      const recorder = recorderOf(url);
      return recorder.recordAnswer.bind(recorder);
    },
  };
}
