/**
 * The app's wiring that no route exercises: Fastify's schema compilers are replaced (routes
 * validate through core/codec), so a route declaring a Fastify schema fails the start loudly
 * instead of loading Ajv's formats and fast-json-stringify behind our backs.
 */
import t from 'tap';
import { makeTestApp } from '../helpers/test-app.js';

t.test('a route that declares a Fastify schema fails when the app becomes ready', async (t) => {
  for (const schema of [{ querystring: { type: 'object' } }, { response: { 200: { type: 'object' } } }]) {
    const { app } = await makeTestApp(t);
    app.get('/with-schema', { schema }, async () => ({}));
    await t.rejects(async () => { await app.ready(); }, { message: /routes declare no Fastify schemas/ }, Object.keys(schema).join());
  }
});

t.test('routes without schemas serve as usual', async (t) => {
  const { app } = await makeTestApp(t);
  app.get('/plain', async () => ({ ok: true }));
  const res = await app.inject({ method: 'GET', url: '/plain' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { ok: true });
});
