/**
 * The route label of bindle_http_requests_total, its duration histogram and the byte counters
 * (server/metrics/http-metrics.ts), over a real listener: a matched request is recorded under its
 * route's pattern, also when it fails (in a hook or in the route) or is conditional, HEAD apart
 * from GET on the same pattern; a request no route matched — an unknown path at the root or in
 * the `/v1` scope, a method the `/v2` scope (its own 404 handler) does not route, or a malformed
 * URL (answered by Fastify's frameworkErrors, outside every route context: not counted at all
 * before) — under `unmatched`; every request exactly once, with its duration, and its bytes
 * under the same label.
 */
import t from 'tap';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { UNMATCHED_ROUTE } from '../../server/metrics/http-metrics.js';
import { ServerMetrics } from '../../server/metrics/server-metrics.js';
import { signedInvoice } from '../helpers/bindles.js';
import { parseScrape, type Scrape } from '../helpers/prometheus.js';
import { rawExchange, firstResponse } from '../helpers/raw-http.js';
import { listenTestApp } from '../helpers/test-app.js';

const INVOICE_ROUTE = '/v1/_i/*';

t.test('every request is recorded once, under its route pattern or unmatched', async (t) => {
  const metrics = new ServerMetrics({ version: 'test', processMetrics: false });
  const server = await listenTestApp(t, { metrics });
  const origin = new URL(server.url).origin;
  const port = Number(new URL(server.url).port);
  const scrape = async (): Promise<Scrape> => {
    const res = await fetch(`${origin}/metrics`);
    t.equal(res.status, 200, '/metrics answers');
    return parseScrape(await res.text());
  };
  const invoice = signedInvoice('example.com/labels', '1.0.0', []);
  const created = await fetch(`${origin}/v1/_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(invoice) });
  t.equal(created.status, 201, 'created');
  const url = `${origin}/v1/_i/example.com/labels/1.0.0`;
  const etag = (await fetch(url)).headers.get('etag') ?? '';
  const before = await scrape();

  const statuses: Array<[string, Promise<Response>, number]> = [];
  const expect = (what: string, status: number, request: Promise<Response>): void => {
    statuses.push([what, request, status]);
  };
  expect('an invoice GET', 200, fetch(url));
  expect('a second one', 200, fetch(url));
  expect('an invoice HEAD', 200, fetch(url, { method: 'HEAD' }));
  expect('a conditional GET that matches', 304, fetch(url, { headers: { 'if-none-match': etag } }));
  expect('an If-Match that does not', 412, fetch(url, { headers: { 'if-match': '"other"' } }));
  expect('a GET of an invoice that is not there', 404, fetch(`${origin}/v1/_i/example.com/labels/2.0.0`));
  expect('a GET of an invalid id', 400, fetch(`${origin}/v1/_i/no-version`));
  expect('a GET with an unknown parameter', 400, fetch(`${url}?surprise=1`));
  expect('a request to a matched route that a hook refuses', 415, fetch(`${origin}/v1/_i`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: 'x' }));
  expect('an unknown path in /v1', 404, fetch(`${origin}/v1/no-such-route`));
  expect('an unknown path at the root', 404, fetch(`${origin}/no-such-page/at/all`));
  expect('a method /v2 does not route (its own 404 handler)', 404, fetch(`${origin}/v2/library/x/tags/list`, { method: 'OPTIONS' }));
  for (const [what, request, status] of statuses) t.equal((await request).status, status, what);
  await (await fetch(url)).arrayBuffer();
  const malformed = firstResponse((await rawExchange(port, [`GET /v1/_i/example.com/%E0%A4%A/1.0.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`])).text);
  t.equal(malformed.status, 400, 'a malformed URL is refused');

  const after = await scrape();
  const requests = (method: string, route: string, status: string): number =>
    after.value('bindle_http_requests_total', { method, route, status }) - before.value('bindle_http_requests_total', { method, route, status });
  const timed = (method: string, route: string, status: string): number =>
    after.count('bindle_http_request_duration_seconds', { method, route, status }) - before.count('bindle_http_request_duration_seconds', { method, route, status });
  const expected: Array<[string, string, string, number, string]> = [
    ['GET', INVOICE_ROUTE, '200', 3, 'the invoice GETs'],
    ['HEAD', INVOICE_ROUTE, '200', 1, 'the HEAD, apart from the GETs of the same pattern'],
    ['GET', INVOICE_ROUTE, '304', 1, 'the conditional GET'],
    ['GET', INVOICE_ROUTE, '412', 1, 'the failed precondition'],
    ['GET', INVOICE_ROUTE, '404', 1, 'the invoice not found: an error of a matched route keeps its pattern'],
    ['GET', INVOICE_ROUTE, '400', 2, 'the invalid id and the unknown parameter'],
    ['POST', '/v1/_i', '415', 1, 'the request a hook refused'],
    ['GET', UNMATCHED_ROUTE, '404', 2, 'the unknown paths'],
    ['OPTIONS', UNMATCHED_ROUTE, '404', 1, 'the method /v2 does not route'],
    ['GET', UNMATCHED_ROUTE, '400', 1, 'the malformed URL (answered outside every route context, by frameworkErrors)'],
  ];
  for (const [method, route, status, n, what] of expected) {
    t.equal(requests(method, route, status), n, `${what}: ${method} ${route} ${status}`);
    t.equal(timed(method, route, status), n, `${what} are timed`);
  }
  const total = (scrape: Scrape): number => scrape.value('bindle_http_requests_total');
  // The scrape `before` was counted once answered: it is among the requests between the scrapes.
  t.equal(total(after) - total(before), 1 + expected.reduce((sum, [, , , n]) => sum + n, 0), 'no request is counted twice or under another label');
  const bytes = (name: string, route: string): number => after.value(name, { route }) - before.value(name, { route });
  t.ok(bytes('bindle_http_sent_bytes_total', INVOICE_ROUTE) >= 3 * Buffer.byteLength(renderInvoice(invoice)), 'the invoices sent are counted under their pattern');
  t.ok(bytes('bindle_http_received_bytes_total', INVOICE_ROUTE) > 0, 'the requests received too');
  t.ok(bytes('bindle_http_sent_bytes_total', UNMATCHED_ROUTE) > 0, 'the answers to unmatched requests are counted as unmatched');
  t.ok(bytes('bindle_http_received_bytes_total', UNMATCHED_ROUTE) > 0, 'their requests too');
});
