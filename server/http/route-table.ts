/**
 * The table of routes an app registers (method and URL pattern, prefix included), recorded
 * as they are added, so that tests can hold the API description (schema/openapi.json) against
 * what the server really serves.
 */
import type { FastifyInstance } from 'fastify';

export interface RouteEntry {
  readonly method: string;
  /** Fastify's pattern, e.g. `/v1/_i/*`. */
  readonly url: string;
}

const tables = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Starts recording `app`'s routes; call before any route is added. */
export function recordRoutes(app: FastifyInstance): void {
  const table: RouteEntry[] = [];
  tables.set(app, table);
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) table.push({ method, url: route.url });
  });
}

/** Every route recorded for `app` (empty when recordRoutes was not called). */
export function routeTable(app: FastifyInstance): readonly RouteEntry[] {
  return tables.get(app) ?? [];
}
