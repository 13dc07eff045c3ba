/**
 * The listener of its own that serves `/metrics` when `--metrics-address` is set (e.g. on an
 * internal interface), so the main address need not expose them: a bare Fastify app with that
 * one route and no logger.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { metricsRoutes } from '../routes/metrics-routes.js';
import type { ServerMetrics } from './server-metrics.js';

export function buildMetricsApp(metrics: ServerMetrics): FastifyInstance {
  const app = Fastify({ logger: false, exposeHeadRoutes: true, return503OnClosing: true, forceCloseConnections: true }) as unknown as FastifyInstance;
  metricsRoutes(app, { metrics });
  return app;
}
