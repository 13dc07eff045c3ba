/**
 * `/openapi.json`: the OpenAPI 3.1 description of this API, generated at build time from
 * schema/ by scripts/gen-openapi.mjs (schema/openapi.json, kept current by `npm run
 * check:openapi`). Served as fixed bytes, loaded and serialized once on first request (the
 * document is imported then, so a server that is never asked for it does not hold it; in the
 * bundle it is a chunk of its own); outside `/v1`, no auth.
 */
import type { FastifyInstance } from 'fastify';

let bytes: Promise<Buffer> | undefined;

async function load(): Promise<Buffer> {
  const { default: openapi } = await import('../../schema/openapi.json', { with: { type: 'json' } });
  return Buffer.from(JSON.stringify(openapi));
}

export function openapiRoutes(app: FastifyInstance): void {
  app.get('/openapi.json', async (_request, reply) => {
    bytes ??= load().catch((err: unknown) => {
      bytes = undefined;
      throw err;
    });
    return reply.code(200).type('application/json').send(await bytes);
  });
}
