/**
 * `/metrics` (issue 15 item 1) on the server as the entry point assembles it (openServer, real
 * listener, real storage): the Prometheus text, read with a real parser, shows requests by route
 * pattern and status, bytes both ways, storage operations and their failures, verification and
 * auth refusals, uploads in flight and process metrics moving after real requests; and
 * `--metrics-address` moves it to a listener of its own.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { createSecretKey } from '../../core/signing/keys.js';
import { VERSION } from '../../core/version.js';
import { tokenDigest } from '../../server/auth/index.js';
import { loadServerConfig } from '../../server/config/server-config.js';
import { routeTable } from '../../server/http/route-table.js';
import { UNMATCHED_ROUTE } from '../../server/metrics/http-metrics.js';
import { openServer, type RunningServer } from '../../server/server-runtime.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { parseScrape, type Scrape } from '../helpers/prometheus.js';

const TOKEN = 'metrics-test-token';
const WRITE = { authorization: `Bearer ${TOKEN}` };

async function startServer(t: Test, extraArgs: string[] = []): Promise<{ server: RunningServer; origin: string }> {
  const dir = t.testdir({ data: {}, tokens: `ci:${tokenDigest(TOKEN)}\n` });
  const config = await loadServerConfig(
    ['-i', '127.0.0.1:0', '-d', join(dir, 'data'), '--token-file', join(dir, 'tokens'),
      '--keyring', vec('scaffolds', 'keys', 'keyring.toml'), '--log-level', 'silent', ...extraArgs],
    {}, dir,
  );
  const server = await openServer(config, { hostLabel: 'Test Host <host@bindle.test>' });
  t.teardown(() => server.close());
  return { server, origin: await server.listen() };
}

async function scrape(t: Test, origin: string): Promise<Scrape> {
  const res = await fetch(`${origin}/metrics`);
  t.equal(res.status, 200, '/metrics answers');
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/, 'the Prometheus text format');
  return parseScrape(await res.text());
}

t.test('the metrics move with requests, by route pattern and status, never by name', async (t) => {
  const { server, origin } = await startServer(t);
  const data = Buffer.alloc(64 * 1024, 'metrics parcel ');
  const invoice = signedInvoice('example.com/metrics', '1.0.0', [{ name: 'data.txt', data }]);
  const parcelUrl = `${origin}/v1/_i/example.com/metrics/1.0.0@${sha256(data)}`;
  const before = await scrape(t, origin);

  const post = (body: string, headers: Record<string, string> = WRITE): Promise<Response> =>
    fetch(`${origin}/v1/_i`, { method: 'POST', headers: { 'content-type': 'application/toml', ...headers }, body });
  t.equal((await post(renderInvoice(invoice))).status, 202, 'created, the parcel missing');
  const wrong = Buffer.alloc(data.length, 'not the parcel ');
  const mismatch = await fetch(parcelUrl, { method: 'POST', headers: WRITE, body: wrong });
  t.equal(mismatch.status, 400, 'a parcel with the wrong bytes is refused');
  t.equal((await fetch(parcelUrl, { method: 'POST', headers: WRITE, body: data })).status, 200, 'the parcel is stored');
  const download = await fetch(parcelUrl);
  t.ok(Buffer.from(await download.arrayBuffer()).equals(data), 'the parcel downloads');
  t.equal((await fetch(`${origin}/v1/_q?q=metrics`)).status, 200, 'a search');
  t.equal((await fetch(`${origin}/v1/no-such-route`)).status, 404, 'an unknown route');

  const badToken = await post(renderInvoice(invoice), { authorization: 'Bearer wrong-token' });
  t.equal(badToken.status, 401, 'a wrong token is refused');
  const anonymous = await post(renderInvoice(invoice), {});
  t.equal(anonymous.status, 403, 'an anonymous write is refused');
  const stranger = createSecretKey('Stranger <stranger@example.com>', ['creator']);
  const unverified = await post(renderInvoice(signedInvoice('example.com/stranger', '1.0.0', [], { key: stranger })), {
    ...WRITE, accept: 'application/json',
  });
  t.equal(unverified.status, 400, 'an invoice signed by an unknown key is refused');
  const reason = ((await unverified.json()) as { code: string }).code;

  const after = await scrape(t, origin);
  const delta = (name: string, labels: Record<string, string>): number => after.value(name, labels) - before.value(name, labels);
  const countDelta = (name: string, labels: Record<string, string>): number => after.count(name, labels) - before.count(name, labels);

  const requests = (method: string, route: string, status: string): number => delta('bindle_http_requests_total', { method, route, status });
  t.equal(requests('POST', '/v1/_i', '202'), 1, 'the create, by route pattern and status');
  t.equal(requests('POST', '/v1/_i', '401'), 1, 'the wrong token');
  t.equal(requests('POST', '/v1/_i', '403'), 1, 'the anonymous write');
  t.equal(requests('POST', '/v1/_i/*', '400'), 1, 'the refused upload');
  t.equal(requests('POST', '/v1/_i/*', '200'), 1, 'the upload');
  t.equal(requests('GET', '/v1/_i/*', '200'), 1, 'the download');
  t.equal(requests('GET', UNMATCHED_ROUTE, '404'), 1, 'the unknown route');
  t.equal(countDelta('bindle_http_request_duration_seconds', { method: 'GET', route: '/v1/_q', status: '200' }), 1, 'the search is timed');
  t.equal(after.types.get('bindle_http_request_duration_seconds'), 'HISTOGRAM');

  t.ok(delta('bindle_http_received_bytes_total', { route: '/v1/_i/*' }) >= 2 * data.length, 'both uploads are counted as received bytes');
  t.ok(delta('bindle_http_sent_bytes_total', { route: '/v1/_i/*' }) >= data.length, 'the download is counted as sent bytes');

  const ops = (seam: string, operation: string): number => countDelta('bindle_storage_operation_duration_seconds', { seam, operation });
  t.equal(ops('parcel_store', 'put'), 2, 'both puts are timed');
  t.equal(ops('invoice_index', 'insert'), 1, 'the one insert is timed');
  t.ok(ops('invoice_index', 'get') >= 1, 'index gets are timed (the create checks the id)');
  t.ok(ops('invoice_index', 'lookup') >= 3, 'index look-ups are timed (the parcel uploads and the download)');
  t.equal(delta('bindle_storage_operation_errors_total', { seam: 'parcel_store', operation: 'put', code: 'digest_mismatch' }), 1, 'the failed put, by code');
  t.equal(after.value('bindle_parcel_uploads_in_flight'), 0, 'no upload in flight');

  t.equal(delta('bindle_verification_failures_total', { reason }), 1, `the verification failure, by reason (${reason})`);
  t.equal(delta('bindle_auth_failures_total', { stage: 'authenticate', reason: 'unauthenticated' }), 1, 'the wrong token');
  t.equal(delta('bindle_auth_failures_total', { stage: 'authorize', reason: 'forbidden' }), 1, 'the anonymous write');

  t.equal(after.value('bindle_build_info', { version: VERSION }), 1, 'the version');
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(after.types.has(name), `process metric ${name}`);
  }

  const patterns = new Set([...routeTable(server.app).map((r) => r.url), UNMATCHED_ROUTE]);
  for (const name of ['bindle_http_requests_total', 'bindle_http_received_bytes_total', 'bindle_http_sent_bytes_total']) {
    const routes = new Set(after.labelSets(name).map((labels) => labels.route ?? ''));
    t.same([...routes].filter((route) => !patterns.has(route)), [], `${name}: every route label is a route pattern`);
  }
});

t.test('--metrics-address serves /metrics on a listener of its own, and not on --address', async (t) => {
  const { server, origin } = await startServer(t, ['--metrics-address', '127.0.0.1:0']);
  const metricsOrigin = server.metricsAddress();
  if (metricsOrigin === undefined) throw new Error('no metrics listener');
  t.not(metricsOrigin, origin, 'another address');
  t.equal((await fetch(`${origin}/metrics`)).status, 404, 'not on the main address');
  const before = await scrape(t, metricsOrigin);
  t.equal((await fetch(`${origin}/healthz`)).status, 200);
  const after = await scrape(t, metricsOrigin);
  const labels = { method: 'GET', route: '/healthz', status: '200' };
  t.equal(after.value('bindle_http_requests_total', labels) - before.value('bindle_http_requests_total', labels), 1, "the main listener's requests are counted");
  t.equal(after.value('bindle_http_requests_total', { route: '/metrics' }), 0, "the metrics listener's own scrapes are not");
});

t.test('the htpasswd verification cache reports its hits and misses', async (t) => {
  const { origin } = await startServer(t, ['--htpasswd-file', vec('data', 'htpasswd')]);
  const admin = { authorization: `Basic ${Buffer.from('admin:sw0rdf1sh').toString('base64')}` };
  for (let i = 0; i < 3; i++) t.equal((await fetch(`${origin}/v1/_q`, { headers: admin })).status, 200, `authenticated read ${i + 1}`);
  const after = await scrape(t, origin);
  t.equal(after.types.get('bindle_cache_lookups_total'), 'COUNTER');
  t.equal(after.value('bindle_cache_lookups_total', { cache: 'htpasswd', result: 'miss' }), 1, 'the first verification is a miss');
  t.equal(after.value('bindle_cache_lookups_total', { cache: 'htpasswd', result: 'hit' }), 2, 'the later ones are hits');
});
