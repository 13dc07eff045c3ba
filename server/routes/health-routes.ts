/** `/healthz`: liveness and the server version, outside `/v1` and without auth. */
import type { FastifyInstance } from 'fastify';
import { sendDocument } from '../http/reply.js';

export function healthRoutes(app: FastifyInstance, opts: { version: string; isReady: () => boolean }): void {
  app.get('/healthz', (request, reply) => {
    if (!opts.isReady()) return sendDocument(request, reply, 503, { error: 'shutting down', code: 'unavailable' });
    return reply.code(200).type('application/json').send(JSON.stringify({ status: 'OK', version: opts.version }));
  });
}
