/**
 * `/metrics`: the Prometheus text exposition of ../metrics/server-metrics.ts, outside `/v1` and
 * without auth (it names route patterns, never bindles or principals); `--metrics-address` moves
 * it to a listener of its own, e.g. on an internal interface.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerMetrics } from '../metrics/server-metrics.js';

export function metricsRoutes(app: FastifyInstance, opts: { metrics: ServerMetrics }): void {
  app.get('/metrics', async (_request, reply) => {
    const text = await opts.metrics.render();
    return reply.code(200).type(opts.metrics.contentType).header('cache-control', 'no-store').send(text);
  });
}
