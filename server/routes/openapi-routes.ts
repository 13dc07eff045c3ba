/**
 * `/openapi.json`: the OpenAPI 3.1 description of this API, generated at build time from
 * schema/ by scripts/gen-openapi.mjs (schema/openapi.json, kept current by `npm run
 * check:openapi`). Served as fixed bytes, serialized once on first request; outside `/v1`, no auth.
 */
import type { FastifyInstance } from 'fastify';
import openapi from '../../schema/openapi.json' with { type: 'json' };

let bytes: Buffer | undefined;

export function openapiRoutes(app: FastifyInstance): void {
  app.get('/openapi.json', (_request, reply) => {
    bytes ??= Buffer.from(JSON.stringify(openapi));
    return reply.code(200).type('application/json').send(bytes);
  });
}
