/**
 * Health, outside `/v1` and without auth: `/livez` (the process serves HTTP), `/readyz` (send it
 * traffic: serving, and the index and parcel store answer within a deadline; 503 with a JSON
 * body saying what failed otherwise, see ../service/readiness.ts) and `/healthz` (kept for
 * compatibility with the reference: 200 unless shutting down).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { HealthReply } from '../../schema/index.js';
import { sendDocument } from '../http/reply.js';
import { readiness, type ReadinessCheck, type ServerState } from '../service/readiness.js';

export interface HealthRouteOptions {
  readonly version: string;
  readonly state: () => ServerState;
  readonly checks: readonly ReadinessCheck[];
  readonly deadlineMs: number;
}

function sendJson(reply: FastifyReply, status: number, body: object): FastifyReply {
  return reply.code(status).type('application/json').header('cache-control', 'no-store').send(JSON.stringify(body));
}

export function healthRoutes(app: FastifyInstance, opts: HealthRouteOptions): void {
  const ok: HealthReply = { status: 'OK', version: opts.version };
  app.get('/healthz', (request, reply) => {
    if (opts.state() === 'stopping') return sendDocument(request, reply, 503, { error: 'shutting down', code: 'unavailable' });
    return sendJson(reply, 200, ok);
  });
  app.get('/livez', (_request, reply) => sendJson(reply, 200, ok));
  app.get('/readyz', async (_request, reply) => {
    const report = await readiness(opts.state(), opts.checks, opts.deadlineMs);
    return sendJson(reply, report.status === 'ready' ? 200 : 503, report);
  });
}
