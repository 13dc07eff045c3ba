/**
 * RFC 9110 §9.1: every resource served to GET is served to HEAD, with the same status and
 * headers and no body. Routes with a HEAD of their own (invoices, parcels, `_q`, bindle keys,
 * OCI reads) have their tests; this checks the rest, on the API listener and the metrics one.
 */
import t, { type Test } from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { buildMetricsApp } from '../../server/metrics/metrics-app.js';
import { ServerMetrics } from '../../server/metrics/server-metrics.js';
import { signedInvoice } from '../helpers/bindles.js';
import { makeTestApp } from '../helpers/test-app.js';

const SAME_HEADERS = ['content-type', 'content-length', 'etag', 'location', 'cache-control', 'content-security-policy', 'docker-distribution-api-version'];

/** `varies`: the length of the body GET would send differs between two requests (counters, timings, the method named in a 404). */
function sameAsGet(t: Test, path: string, get: LightMyRequestResponse, head: LightMyRequestResponse, varies = false): void {
  t.equal(head.statusCode, get.statusCode, `${path}: HEAD has GET's status (${get.statusCode})`);
  t.equal(head.body, '', `${path}: HEAD has no body`);
  for (const name of SAME_HEADERS) {
    if (name === 'content-length' && varies) t.ok(head.headers[name], `${path}: content-length`);
    else t.equal(head.headers[name], get.headers[name], `${path}: ${name}`);
  }
}

t.test('every GET route of the API listener answers HEAD as it answers GET, without the body', async (t) => {
  const metrics = new ServerMetrics({ version: 'test', processMetrics: false });
  const ta = await makeTestApp(t, { metrics });
  const invoice = signedInvoice('example.com/head', '1.0.0', [{ name: 'a.txt', data: Buffer.from('a') }]);
  const created = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) });
  t.equal(created.statusCode, 202, created.body);
  const home = await ta.app.inject({ method: 'GET', url: '/ui/' });
  const stylesheet = /href="(\/ui\/static\/[^"]+\.css)"/.exec(home.body)?.[1];
  t.ok(stylesheet, 'the UI links its stylesheet');
  const paths = [
    '/healthz', '/livez', '/readyz', '/metrics', '/openapi.json', '/', '/ui/', '/ui/?q=head', '/ui/bindles/example.com/head/1.0.0',
    String(stylesheet), '/v1/_r/missing/example.com/head/1.0.0', '/v2/',
  ];
  for (const path of paths) {
    const get = await ta.app.inject({ method: 'GET', url: path });
    const head = await ta.app.inject({ method: 'HEAD', url: path });
    t.not(get.statusCode, 404, `${path}: served (${get.statusCode})`);
    // Counters, and how long each readiness check took, change between two requests.
    sameAsGet(t, path, get, head, path === '/metrics' || path === '/readyz');
  }
  for (const path of ['/ui/nothing-here', '/v1/nothing-here']) {
    const get = await ta.app.inject({ method: 'GET', url: path });
    t.equal(get.statusCode, 404, `${path}: not a page`);
    sameAsGet(t, path, get, await ta.app.inject({ method: 'HEAD', url: path }), true);
  }
});

t.test('the metrics listener answers HEAD /metrics', async (t) => {
  const app = buildMetricsApp(new ServerMetrics({ version: 'test', processMetrics: false }));
  t.teardown(() => app.close());
  const get = await app.inject({ method: 'GET', url: '/metrics' });
  const head = await app.inject({ method: 'HEAD', url: '/metrics' });
  t.equal(get.statusCode, 200);
  t.equal(head.statusCode, 200);
  t.equal(head.body, '');
  t.equal(head.headers['content-type'], get.headers['content-type']);
});
