/**
 * `/openapi.json` (issue 15 item 3): the OpenAPI 3.1 document generated at build time from
 * schema/ (scripts/gen-openapi.mjs) is served as committed, is valid by a well-kept validator
 * (@seriousme/openapi-schema-validator), its component schemas are valid JSON Schema 2020-12
 * that accept real documents, and it describes every route the server registers — and only
 * those. A new route fails here until it is documented; the OCI API (/v2) and the web UI have
 * specs of their own and are excluded by prefix, except the OCI catalog extension, which is described here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import t, { type Test } from 'tap';
import { SCHEMA_FORMATS } from '../../schema/index.js';
import { routeTable } from '../../server/http/route-table.js';
import { ServerMetrics } from '../../server/metrics/server-metrics.js';
import { loadScaffold } from '../helpers/bindles.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { makeTestApp } from '../helpers/test-app.js';

/** Route prefixes described by specs of their own (the OCI distribution API, the web UI). */
const EXCLUDED_PREFIXES = ['/v2', '/ui/'];
/** Routes under those prefixes that no such spec describes, so this document does (the OCI catalog extension). */
const DESCRIBED_HERE = ['/v2/_catalog'];
/** The web UI's entry points (HTML redirects to /ui/), not API operations. */
const EXCLUDED_PATHS = ['/', '/ui'];
const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'] as const;

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Partial<Record<(typeof METHODS)[number], { operationId?: string }>>>;
  components: { schemas: Record<string, object> };
}

const committed = JSON.parse(readFileSync(join(REPO_ROOT, 'schema', 'openapi.json'), 'utf8')) as OpenApiDocument;

/** Every documented operation as method + path template. */
const documented = Object.entries(committed.paths).flatMap(([path, item]) =>
  METHODS.filter((m) => item[m] !== undefined).map((m) => ({ method: m.toUpperCase(), path })));

/** Whether Fastify's pattern (`*` at the end matches the rest) covers the documented template. */
function covers(pattern: string, template: string): boolean {
  const concrete = template.replace(/\{[^}]+\}/g, 'x');
  return pattern.endsWith('*') ? concrete.startsWith(pattern.slice(0, -1)) && concrete.length >= pattern.length : concrete === pattern;
}

async function everyRouteApp(t: Test) {
  return makeTestApp(t, {
    metrics: new ServerMetrics({ version: 'test', processMetrics: false }),
    login: { clientId: 'bindle-cli', deviceUrl: 'http://127.0.0.1:1/device', tokenUrl: () => Promise.resolve('http://127.0.0.1:1/token') },
  });
}

t.test('served as committed, and valid OpenAPI 3.1', async (t) => {
  const ta = await everyRouteApp(t);
  const res = await ta.app.inject({ url: '/openapi.json' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.same(JSON.parse(res.body), committed, 'the committed schema/openapi.json (npm run check:openapi keeps it current)');

  const validator = new Validator();
  const result = await validator.validate(JSON.parse(res.body) as Record<string, unknown>);
  t.same(result.errors ?? [], [], 'no validation errors');
  t.equal(result.valid, true, 'valid');
  t.equal(validator.version, '3.1', 'an OpenAPI 3.1 document');
  t.equal(new Set(documented.map((op) => committed.paths[op.path]?.[op.method.toLowerCase() as (typeof METHODS)[number]]?.operationId)).size, documented.length, 'operation ids are unique');
});

t.test('the component schemas are JSON Schema 2020-12 and accept real documents', async (t) => {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
  for (const [name, format] of Object.entries(SCHEMA_FORMATS)) ajv.addFormat(name, format);
  // The document's $refs point into it (#/components/schemas/…): add it whole, as the root they resolve in.
  ajv.addVocabulary(['openapi', 'info', 'servers', 'security', 'tags', 'paths', 'components']);
  ajv.addSchema({ ...committed, $id: 'bindle-openapi' });
  for (const name of Object.keys(committed.components.schemas)) {
    t.doesNotThrow(() => ajv.getSchema(`bindle-openapi#/components/schemas/${name}`), `${name} compiles`);
  }
  const validate = (name: string, doc: unknown): boolean => ajv.getSchema(`bindle-openapi#/components/schemas/${name}`)?.(doc) === true;
  const { invoice } = loadScaffold('valid_v1');
  t.ok(validate('Invoice', invoice), 'a signed invoice is an Invoice');
  t.notOk(validate('Invoice', { ...invoice, bindle: { name: 'x' } }), 'an invoice without a version is not');
  t.ok(validate('ErrorReply', { error: 'gone', code: 'not_found' }));
  t.notOk(validate('ErrorReply', { error: 'gone', code: 'no_such_code' }), 'error codes are the closed set');
});

t.test('every registered route is documented, and every documented route is registered', async (t) => {
  const ta = await everyRouteApp(t);
  const routes = routeTable(ta.app).filter(
    (r) => DESCRIBED_HERE.includes(r.url) || (!EXCLUDED_PATHS.includes(r.url) && !EXCLUDED_PREFIXES.some((prefix) => r.url.startsWith(prefix))),
  );
  t.ok(routes.length >= 15, `the route table is recorded (${routes.length} routes)`);
  for (const route of routes) {
    const found = documented.some((op) => op.method === route.method && covers(route.url, op.path));
    t.ok(found, `${route.method} ${route.url} is in schema/openapi.json`);
  }
  for (const op of documented) {
    const found = routes.some((route) => route.method === op.method && covers(route.url, op.path));
    t.ok(found, `documented ${op.method} ${op.path} is served`);
  }
});
