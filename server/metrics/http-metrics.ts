/**
 * Records every answered HTTP request into ServerMetrics from one onResponse hook: count and
 * duration by method, route pattern (Fastify's, e.g. `/v1/_i/*`; `unmatched` when no route
 * matched — never a bindle name) and status, and the bytes the connection carried for it.
 *
 * Cheap on the hot path: the metric series of each method/route/status are looked up in
 * nested maps (no label strings built per request) and recorded by plain additions
 * (./plain-metrics.ts), and bytes are the differences of the socket's own counters since the
 * connection's previous request (headers included), so no stream is wrapped or listened to.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { CounterSeries, HistogramSeries } from './plain-metrics.js';
import type { ServerMetrics } from './server-metrics.js';

/** The label used for requests no route matched (404s of unknown paths, malformed URLs). */
export const UNMATCHED_ROUTE = 'unmatched';

interface RequestChildren {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
}

interface RouteChildren {
  readonly received: CounterSeries;
  readonly sent: CounterSeries;
  /** By method, then status. */
  readonly byMethod: Map<string, Map<number, RequestChildren>>;
}

/** The socket counters already attributed to earlier requests on the same connection. */
interface SocketMark {
  read: number;
  written: number;
}

export function registerHttpMetrics(app: FastifyInstance, metrics: ServerMetrics): void {
  const routes = new Map<string, RouteChildren>();
  const marks = new WeakMap<Socket, SocketMark>();

  const routeChildren = (route: string): RouteChildren => {
    let children = routes.get(route);
    if (children === undefined) {
      children = { received: metrics.httpReceivedBytes.series(route), sent: metrics.httpSentBytes.series(route), byMethod: new Map() };
      routes.set(route, children);
    }
    return children;
  };

  const requestChildren = (route: string, byMethod: RouteChildren['byMethod'], method: string, status: number): RequestChildren => {
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      byMethod.set(method, byStatus);
    }
    let children = byStatus.get(status);
    if (children === undefined) {
      const labels = [method, route, String(status)];
      children = { requests: metrics.httpRequests.series(...labels), duration: metrics.httpDuration.series(...labels) };
      byStatus.set(status, children);
    }
    return children;
  };

  const countBytes = (socket: Socket | null, route: RouteChildren): void => {
    if (socket === null || typeof socket.bytesRead !== 'number' || typeof socket.bytesWritten !== 'number') return;
    let mark = marks.get(socket);
    if (mark === undefined) {
      mark = { read: 0, written: 0 };
      marks.set(socket, mark);
    }
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (read > mark.read) route.received.value += read - mark.read;
    if (written > mark.written) route.sent.value += written - mark.written;
    mark.read = read;
    mark.written = written;
  };

  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const children = routeChildren(route);
    const perRequest = requestChildren(route, children.byMethod, request.method, reply.statusCode);
    perRequest.requests.value++;
    metrics.httpDuration.observe(perRequest.duration, reply.elapsedTime / 1000);
    countBytes(request.raw.socket, children);
    done();
  });
}
