/**
 * Records every answered HTTP request into ServerMetrics from one onResponse hook: count and
 * duration by method, route pattern (Fastify's, e.g. `/v1/_i/*`; `unmatched` when no route
 * matched — never a bindle name) and status, and the bytes the connection carried for it.
 *
 * Cheap on the hot path: the metric series are looked up by their label values (no key string
 * built per request) and recorded by plain additions (./plain-metrics.ts), and bytes are the differences of the socket's own counters since the
 * connection's previous request (headers included), so no stream is wrapped or listened to.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { ServerMetrics } from './server-metrics.js';

/** The label used for requests no route matched (404s of unknown paths, malformed URLs). */
export const UNMATCHED_ROUTE = 'unmatched';

/** The socket counters already attributed to earlier requests on the same connection. */
interface SocketMark {
  read: number;
  written: number;
}

export function registerHttpMetrics(app: FastifyInstance, metrics: ServerMetrics): void {
  const marks = new WeakMap<Socket, SocketMark>();

  const countBytes = (socket: Socket | null, route: string): void => {
    if (socket === null || typeof socket.bytesRead !== 'number' || typeof socket.bytesWritten !== 'number') return;
    let mark = marks.get(socket);
    if (mark === undefined) {
      mark = { read: 0, written: 0 };
      marks.set(socket, mark);
    }
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (read > mark.read) metrics.httpReceivedBytes.series(route).value += read - mark.read;
    if (written > mark.written) metrics.httpSentBytes.series(route).value += written - mark.written;
    mark.read = read;
    mark.written = written;
  };

  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const status = String(reply.statusCode);
    metrics.httpRequests.series(request.method, route, status).value++;
    metrics.httpDuration.observe(metrics.httpDuration.series(request.method, route, status), reply.elapsedTime / 1000);
    countBytes(request.raw.socket, route);
    done();
  });
}
