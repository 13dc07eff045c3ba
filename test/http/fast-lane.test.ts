/**
 * The invoice fast lane (server/http/fast-lane.ts), over real connections: what it
 * answers is what the `/v1/_i/*` route answers for the same request, byte for byte but the Date;
 * every request it must not answer reaches Fastify (an onSend hook counts them) and gets
 * Fastify's answer; its answers are counted in the route's metrics; at `info` it logs each
 * answer with the lines Fastify writes for the same request, with ids from Fastify's counter.
 */
import { Agent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authorizer, Principal } from '../../server/auth/index.js';
import { tokenDigest } from '../../server/auth/index.js';
import { loadServerConfig } from '../../server/config/server-config.js';
import { openServer } from '../../server/server-runtime.js';
import { recordingLogger, type LogRecord } from '../helpers/log-records.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { parseScrape } from '../helpers/prometheus.js';
import { rawExchange } from '../helpers/raw-http.js';
import { listenForRawClients, makeTestApp, storeInvoiceDirect, type TestApp, type TestAppOptions } from '../helpers/test-app.js';

interface Answer {
  status: number;
  /** Every header but Date, as `name: value` lines in the order sent, names lowercased. */
  headers: string[];
  date: string | undefined;
  body: Buffer;
}

/** One request, on a connection of its own unless an agent is given; the answer with its headers as sent. */
function ask(port: number, path: string, options: { method?: string; headers?: OutgoingHttpHeaders; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const headers: string[] = [];
        let date: string | undefined;
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = (res.rawHeaders[i] ?? '').toLowerCase();
          const value = res.rawHeaders[i + 1] ?? '';
          if (name === 'date') date = value;
          else headers.push(`${name}: ${value}`);
        }
        resolve({ status: res.statusCode ?? 0, headers, date, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Counts the requests Fastify answers (every reply it sends, refusals too, passes its onSend hooks). */
function fastifyCounter(ta: TestApp): { seen: number } {
  const counter = { seen: 0 };
  ta.app.addHook('onSend', (_request, _reply, _payload, done) => {
    counter.seen++;
    done();
  });
  return counter;
}

interface Lane {
  ta: TestApp;
  port: number;
  counter: { seen: number };
}

async function lane(t: Test, opts: TestAppOptions = {}): Promise<Lane> {
  const ta = await makeTestApp(t, opts);
  const counter = fastifyCounter(ta);
  const port = await listenForRawClients(t, ta);
  return { ta, port, counter };
}

const INVOICE = '/v1/_i/example.com/fast/1.0.0';

/** Stores the test invoice and has the route read it once, so that the index caches it. */
async function storedAndRead(t: Test, l: Lane): Promise<void> {
  await storeInvoiceDirect(l.ta, signedInvoice('example.com/fast', '1.0.0', [{ name: 'a.txt', data: Buffer.from('fast lane parcel') }]));
  const first = await ask(l.port, INVOICE);
  t.equal(first.status, 200, 'the first read');
}

t.test('a cached invoice is answered without Fastify, exactly as the route answers it', async (t) => {
  const l = await lane(t);
  await storedAndRead(t, l);
  const cases: Array<{ method: string; headers: OutgoingHttpHeaders }> = [
    { method: 'GET', headers: {} },
    { method: 'GET', headers: { accept: 'application/json' } },
    { method: 'GET', headers: { accept: 'application/toml' } },
    { method: 'GET', headers: { accept: 'text/html, application/json;q=0.9, application/toml;q=0' } },
    { method: 'GET', headers: { accept: '*/*', 'content-length': '0' } },
    { method: 'HEAD', headers: {} },
    { method: 'HEAD', headers: { accept: 'application/json' } },
    { method: 'GET', headers: { connection: 'close' } },
  ];
  for (const c of cases) {
    const label = `${c.method} ${JSON.stringify(c.headers)}`;
    const before = l.counter.seen;
    const fast = await ask(l.port, INVOICE, c);
    t.equal(l.counter.seen, before, `${label}: not seen by Fastify`);
    // A query the route accepts sends the request through Fastify: the route's own answer.
    const routed = await ask(l.port, `${INVOICE}?yanked=false`, c);
    t.equal(l.counter.seen, before + 1, `${label}: the route's answer came through Fastify`);
    t.equal(fast.status, 200, `${label}: 200`);
    t.same(fast.headers, routed.headers, `${label}: the same headers in the same order`);
    t.ok(fast.body.equals(routed.body), `${label}: the same body`);
    t.match(fast.date, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, `${label}: a Date`);
  }
  // An invoice too big to be kept as a Buffer beside its text (PREPARED_BUFFER_UNITS) is sent as its text.
  const big = '/v1/_i/example.com/fast/2.0.0';
  await storeInvoiceDirect(l.ta, signedInvoice('example.com/fast', '2.0.0', [], { description: 'é'.repeat(70 * 1024) }));
  t.equal((await ask(l.port, big)).status, 200, 'a big invoice, read once');
  for (const accept of ['application/toml', 'application/json']) {
    const before = l.counter.seen;
    const fast = await ask(l.port, big, { headers: { accept } });
    t.equal(l.counter.seen, before, `big ${accept}: not seen by Fastify`);
    const routed = await ask(l.port, `${big}?yanked=false`, { headers: { accept } });
    t.same(fast.headers, routed.headers, `big ${accept}: the same headers`);
    t.ok(fast.body.equals(routed.body) && fast.body.length > 140 * 1024, `big ${accept}: the same body`);
  }
  const json = await ask(l.port, INVOICE, { headers: { accept: 'application/json' } });
  t.equal((JSON.parse(json.body.toString('utf8')) as { bindle: { name: string } }).bindle.name, 'example.com/fast', 'the JSON body is the invoice');
});

t.test('every request the fast lane must not answer goes to Fastify, which answers it', async (t) => {
  const l = await lane(t);
  await storedAndRead(t, l);
  const parcel = `${INVOICE}@${sha256('fast lane parcel')}`;
  const etag = (await ask(l.port, INVOICE)).headers.find((h) => h.startsWith('etag: '))?.slice('etag: '.length) ?? '';
  const cases: Array<{ what: string; path: string; method?: string; headers?: OutgoingHttpHeaders; status: number }> = [
    { what: 'credentials', path: INVOICE, headers: { authorization: 'Bearer some-token' }, status: 200 },
    { what: 'If-None-Match', path: INVOICE, headers: { 'if-none-match': etag }, status: 304 },
    { what: 'If-Match that fails', path: INVOICE, headers: { 'if-match': '"other"' }, status: 412 },
    { what: 'a query', path: `${INVOICE}?yanked=true`, status: 200 },
    { what: 'an unknown query', path: `${INVOICE}?x=1`, status: 400 },
    { what: 'a percent-encoded path', path: '/v1/_i/example.com%2Ffast/1.0.0', status: 200 },
    { what: 'a parcel', path: parcel, status: 404 },
    { what: 'a trailing slash', path: `${INVOICE}/`, status: 400 },
    { what: 'an absent invoice', path: '/v1/_i/example.com/fast/9.9.9', status: 404 },
    { what: 'a body', path: INVOICE, headers: { 'content-length': '3' }, status: 200 },
    { what: 'a Content-Encoding', path: INVOICE, headers: { 'content-encoding': 'gzip' }, status: 415 },
    { what: 'a POST', path: INVOICE, method: 'POST', headers: { 'content-type': 'application/octet-stream' }, status: 415 },
    { what: 'an over-long name', path: `/v1/_i/example.com/${'x'.repeat(2100)}/1.0.0`, status: 400 },
  ];
  for (const c of cases) {
    const before = l.counter.seen;
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: l.port, path: c.path, method: c.method ?? 'GET', headers: c.headers ?? {}, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: [], date: undefined, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(c.headers?.['content-length'] === '3' ? 'abc' : undefined);
    });
    t.equal(answer.status, c.status, `${c.what}: ${c.status} ${answer.body.toString('utf8').slice(0, 200)}`);
    t.equal(l.counter.seen, before + 1, `${c.what}: answered by Fastify`);
  }

  const noHost = await rawExchange(l.port, [`GET ${INVOICE} HTTP/1.0\r\n\r\n`]);
  t.match(noHost.text, /^HTTP\/1\.1 200 /, 'HTTP/1.0 without Host: served');
  const before = l.counter.seen;
  const noHost11 = await rawExchange(l.port, [`GET ${INVOICE} HTTP/1.1\r\nConnection: close\r\n\r\n`]);
  t.match(noHost11.text, /^HTTP\/1\.1 400 /, 'HTTP/1.1 without Host: refused');
  t.equal(l.counter.seen, before + 1, 'by Fastify');
});

/** Sends `body` (a POST of a parcel) on a connection of its own; resolves with the status. */
function upload(port: number, path: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/octet-stream' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('a remembered parcel is answered without Fastify, exactly as the route answers it', async (t) => {
  const l = await lane(t);
  const parcels = [
    { name: 'module.wasm', data: Buffer.from('\0asm fast lane module'), mediaType: 'application/wasm' },
    { name: 'page.html', data: Buffer.from('<script>alert(1)</script>'), mediaType: 'text/html' },
    { name: 'empty.bin', data: Buffer.alloc(0), mediaType: 'application/octet-stream' },
    { name: 'big.bin', data: Buffer.alloc(200 * 1024, 'big parcel '), mediaType: 'application/octet-stream' },
  ];
  await storeInvoiceDirect(l.ta, signedInvoice('example.com/fast', '1.0.0', parcels));
  for (const p of parcels) {
    const path = `${INVOICE}@${sha256(p.data)}`;
    t.equal(await upload(l.port, path, p.data), 200, `${p.name} stored`);
    const first = await ask(l.port, path);
    t.ok(first.status === 200 && first.body.equals(p.data), `${p.name}: the first read, by the route`);
    for (const method of ['GET', 'HEAD']) {
      const label = `${method} ${p.name}`;
      const before = l.counter.seen;
      const fast = await ask(l.port, path, { method });
      // The big parcel's bytes are not kept in memory: its GET goes to the route, which streams it.
      const expected = p.name === 'big.bin' && method === 'GET' ? 1 : 0;
      t.equal(l.counter.seen, before + expected, `${label}: ${expected === 0 ? 'not ' : ''}seen by Fastify`);
      const routed = await ask(l.port, `${path}?yanked=false`, { method });
      t.equal(fast.status, 200, `${label}: 200`);
      t.same(fast.headers, routed.headers, `${label}: the same headers in the same order`);
      t.ok(fast.body.equals(routed.body) && (method === 'HEAD' || fast.body.equals(p.data)), `${label}: the same body`);
    }
  }
  const html = await ask(l.port, `${INVOICE}@${sha256(parcels[1]?.data ?? '')}`);
  t.ok(html.headers.includes('content-disposition: attachment') && html.headers.includes('x-content-type-options: nosniff'), 'with the protective headers');

  const wasm = `${INVOICE}@${sha256(parcels[0]?.data ?? '')}`;
  const declined: Array<{ what: string; path: string; headers?: OutgoingHttpHeaders; status: number }> = [
    { what: 'Range', path: wasm, headers: { range: 'bytes=0-3' }, status: 206 },
    { what: 'If-Range', path: wasm, headers: { range: 'bytes=0-3', 'if-range': '"other"' }, status: 200 },
    { what: 'If-None-Match', path: wasm, headers: { 'if-none-match': `"${sha256(parcels[0]?.data ?? '')}"` }, status: 304 },
    { what: 'a parcel not on the invoice', path: `${INVOICE}@${sha256('not listed')}`, status: 404 },
    { what: 'an uppercase digest', path: `${INVOICE}@${sha256(parcels[0]?.data ?? '').toUpperCase()}`, status: 400 },
    { what: 'a digest of the wrong length', path: `${INVOICE}@abc`, status: 400 },
  ];
  for (const c of declined) {
    const before = l.counter.seen;
    const answer = await ask(l.port, c.path, { headers: c.headers ?? {} });
    t.equal(answer.status, c.status, `${c.what}: ${c.status}`);
    t.equal(l.counter.seen, before + 1, `${c.what}: answered by Fastify`);
  }
  const listed = signedInvoice('example.com/fast', '2.0.0', [{ name: 'later.bin', data: Buffer.from('uploaded later') }]);
  await storeInvoiceDirect(l.ta, listed);
  t.equal((await ask(l.port, '/v1/_i/example.com/fast/2.0.0')).status, 200, 'its invoice cached');
  const before = l.counter.seen;
  t.equal((await ask(l.port, `/v1/_i/example.com/fast/2.0.0@${sha256('uploaded later')}`)).status, 404, 'a listed parcel not uploaded yet');
  t.equal(l.counter.seen, before + 1, 'answered by Fastify');
});

t.test('pipelined requests are answered in order, whichever way each goes', async (t) => {
  const l = await lane(t);
  await storedAndRead(t, l);
  const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
  // A search waits for the admission gate (a later turn of the event loop); the fast answers after it must wait for it.
  const result = await rawExchange(l.port, [
    get(INVOICE) + get('/v1/_q?q=fast', 'Accept: application/json\r\n') + get(INVOICE, 'Accept: application/json\r\n') + get('/healthz', 'Connection: close\r\n'),
  ]);
  const bodies: string[] = [];
  let rest = result.text;
  while (rest.startsWith('HTTP/1.1 200 ')) {
    const end = rest.indexOf('\r\n\r\n');
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(rest.slice(0, end))?.[1] ?? 'NaN');
    bodies.push(rest.slice(end + 4, end + 4 + length));
    rest = rest.slice(end + 4 + length);
  }
  t.equal(bodies.length, 4, 'four answers, each 200 with its length');
  t.equal(rest, '', 'nothing more');
  t.match(bodies[0], /^bindleVersion = /, 'first the TOML invoice');
  t.match(bodies[1], /^\{"query":/, 'then the search');
  t.match(bodies[2], /^\{"bindleVersion":/, 'then the JSON invoice');
  t.match(bodies[3], /ok|serving|status/i, 'then /healthz');
});

t.test('an index failing in cachedInvoice: the request goes to Fastify, and the server stays up', async (t) => {
  const l = await lane(t);
  await storedAndRead(t, l);
  l.ta.index.cachedInvoice = () => {
    throw new Error('the index failed');
  };
  const before = l.counter.seen;
  t.equal((await ask(l.port, INVOICE)).status, 200, 'served by the route, whose lookup works');
  t.equal(l.counter.seen, before + 1, 'by Fastify');
  t.equal((await ask(l.port, '/healthz')).status, 200, 'the server still answers');
});

t.test('a yank through the API ends the fast answers at once', async (t) => {
  const l = await lane(t);
  await storedAndRead(t, l);
  t.equal((await ask(l.port, INVOICE)).status, 200);
  const yank = await ask(l.port, INVOICE, { method: 'DELETE' });
  t.equal(yank.status, 200, 'yanked');
  const before = l.counter.seen;
  const after = await ask(l.port, INVOICE);
  t.equal(after.status, 403, 'a yanked invoice is refused');
  t.equal(l.counter.seen, before + 1, 'by Fastify');
  const allowed = await ask(l.port, `${INVOICE}?yanked=true`);
  t.match(allowed.body.toString('utf8'), /yanked = true/, 'and served with ?yanked=true');
});

t.test('an authorizer that refuses anonymous reads: Fastify refuses them', async (t) => {
  /** Lets anonymous callers read until told otherwise. */
  class SwitchAuthorizer implements Authorizer {
    anonymousReads = true;
    asked = 0;
    authorize(principal: Principal | undefined, action: Action): void {
      this.asked++;
      if (principal === undefined && (action !== 'read' || !this.anonymousReads)) throw new BindleError('unauthenticated', 'log in');
    }
  }
  const authorizer = new SwitchAuthorizer();
  const l = await lane(t, { authorizer });
  await storedAndRead(t, l);
  let before = l.counter.seen;
  t.equal((await ask(l.port, INVOICE)).status, 200);
  t.equal(l.counter.seen, before, 'answered in the fast lane while anonymous reads are allowed');
  authorizer.anonymousReads = false;
  before = l.counter.seen;
  const asked = authorizer.asked;
  t.equal((await ask(l.port, INVOICE)).status, 401, 'refused once they are not');
  t.equal(l.counter.seen, before + 1, 'by Fastify');
  t.equal(authorizer.asked, asked + 1, 'the authorizer was asked once (its refusals are counted once)');
  before = l.counter.seen;
  t.equal((await ask(l.port, `${INVOICE}?yanked=true`)).status, 401, 'a read Fastify decides alone is refused too');
  t.equal(authorizer.asked, asked + 2, 'asked once again');
});

/** Resolves once `ready()` holds, checking every 10 ms; fails the wait after 5 s. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !ready(); waited += 10) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A request's log lines, as written, with its id, time and response time replaced by placeholders. */
function comparable(records: LogRecord[], reqId: unknown): string[] {
  return records
    .filter((r) => r.reqId === reqId)
    .map((r) => JSON.stringify({ ...r, time: 0, reqId: 'ID', ...(r.responseTime !== undefined ? { responseTime: 0 } : {}) }));
}

/** The counter of a request id Fastify gives by default (`req-` and base 36). */
function idNumber(reqId: unknown): number {
  const match = /^req-([0-9a-z]+)$/.exec(String(reqId));
  return match === null ? Number.NaN : parseInt(match[1] ?? '', 36);
}

type Logged = Lane & { records: LogRecord[] };

/** A lane whose app logs at info into `records`. */
async function loggedLane(t: Test, opts: TestAppOptions = {}): Promise<Logged> {
  const { logger, records } = recordingLogger('info');
  return { ...(await lane(t, { ...opts, logger })), records };
}

/**
 * Sends each request twice on one connection (the same logged port): to the fast lane, then to
 * Fastify (an If-None-Match that does not match, which Fastify's log does not show), and checks
 * that the lane logged it with the same lines as Fastify, but for id, time and response time.
 */
async function sameLines(t: Test, l: Logged, requests: Array<{ path: string; method: string; headers: OutgoingHttpHeaders }>): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  for (const r of requests) {
    const label = `${r.method} ${r.path} ${JSON.stringify(r.headers)}`;
    const seen = l.counter.seen;
    const mark = l.records.length;
    t.equal((await ask(l.port, r.path, { agent, method: r.method, headers: r.headers })).status, 200, `${label}: fast`);
    t.equal(l.counter.seen, seen, `${label}: not seen by Fastify`);
    t.equal((await ask(l.port, r.path, { agent, method: r.method, headers: { ...r.headers, 'if-none-match': '"other"' } })).status, 200, `${label}: routed`);
    t.equal(l.counter.seen, seen + 1, `${label}: the second one seen by Fastify`);
    await until(() => l.records.length >= mark + 4, 'four log lines');
    const written = l.records.slice(mark);
    const [fastId, routedId] = [...new Set(written.map((w) => w.reqId))];
    t.equal(idNumber(routedId), idNumber(fastId) + 1, `${label}: the two requests have consecutive ids from one counter`);
    const fast = comparable(written, fastId);
    t.same(fast.map((line) => (JSON.parse(line) as LogRecord).msg), ['incoming request', 'request completed'], `${label}: the fast lane's two lines`);
    t.same(fast, comparable(written, routedId), `${label}: the same lines, fields and order as Fastify's but for id, time and response time`);
    const completed = written.find((w) => w.reqId === fastId && w.msg === 'request completed');
    t.ok(typeof completed?.responseTime === 'number' && completed.responseTime >= 0, `${label}: a response time`);
  }
}

t.test('at info, the fast lane logs each request it answers with the lines Fastify writes for it', async (t) => {
  const l = await loggedLane(t);
  await storedAndRead(t, l);
  const parcel = `${INVOICE}@${sha256(Buffer.from('fast lane parcel'))}`;
  t.equal(await upload(l.port, parcel, Buffer.from('fast lane parcel')), 200, 'the parcel stored');
  t.equal((await ask(l.port, parcel)).status, 200, 'and read once, through Fastify');
  await sameLines(t, l, [
    { path: INVOICE, method: 'GET', headers: {} },
    { path: INVOICE, method: 'HEAD', headers: { accept: 'application/json' } },
    { path: INVOICE, method: 'GET', headers: { 'accept-version': '1.x' } },
    // Not trusted proxies here: forwarding headers change nothing.
    { path: INVOICE, method: 'GET', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-host': 'registry.example' } },
    { path: parcel, method: 'GET', headers: {} },
  ]);
  const ids = l.records.filter((r) => r.msg === 'incoming request').map((r) => idNumber(r.reqId));
  t.ok(ids.length > 10 && ids.every((id, i) => i === 0 || id === (ids[i - 1] ?? 0) + 1), 'every request, fast or not, had the next id');
});

t.test('behind trusted proxies, the fast lane logs the forwarded address and host as Fastify does', async (t) => {
  t.test('the peer is a trusted proxy', async (t) => {
    const l = await loggedLane(t, { trustProxy: ['127.0.0.1', '10.0.0.0/8'] });
    await storedAndRead(t, l);
    await sameLines(t, l, [
      { path: INVOICE, method: 'GET', headers: {} },
      { path: INVOICE, method: 'GET', headers: { 'x-forwarded-for': '203.0.113.7' } },
      // The client is the last address before a hop the server does not trust.
      { path: INVOICE, method: 'GET', headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.7, 10.1.2.3' } },
      { path: INVOICE, method: 'HEAD', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-host': 'a.example, registry.example:8443' } },
      { path: INVOICE, method: 'GET', headers: { 'x-forwarded-host': ' registry.example ' } },
    ]);
    const logged = l.records.filter((r) => r.msg === 'incoming request').map((r) => r.req as { remoteAddress?: string; host?: string });
    t.ok(logged.some((req) => req.remoteAddress === '203.0.113.7' && req.host === 'registry.example:8443'), 'the forwarded address and host were logged');
  });
  t.test('the peer is not a trusted proxy', async (t) => {
    const l = await loggedLane(t, { trustProxy: ['10.0.0.0/8'] });
    await storedAndRead(t, l);
    await sameLines(t, l, [{ path: INVOICE, method: 'GET', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-host': 'registry.example' } }]);
    const logged = l.records.filter((r) => r.msg === 'incoming request').map((r) => r.req as { remoteAddress?: string; host?: string });
    t.ok(logged.every((req) => req.remoteAddress === '127.0.0.1' && req.host !== 'registry.example'), 'the headers were ignored');
  });
});

t.test('at warn, the fast lane answers and nothing is logged', async (t) => {
  const { logger, records } = recordingLogger('info');
  const l = await lane(t, { logger });
  await storedAndRead(t, l);
  logger.level = 'warn';
  const seen = l.counter.seen;
  const mark = records.length;
  t.equal((await ask(l.port, INVOICE)).status, 200);
  t.equal(l.counter.seen, seen, 'not seen by Fastify');
  t.equal(records.length, mark, 'no line');
});

t.test('at debug, logged requests go through Fastify', async (t) => {
  const { logger, records } = recordingLogger('debug');
  const l = await lane(t, { logger });
  await storedAndRead(t, l);
  const seen = l.counter.seen;
  t.equal((await ask(l.port, INVOICE)).status, 200);
  t.equal(l.counter.seen, seen + 1, 'seen by Fastify');
  await until(() => records.filter((r) => r.msg === 'request completed').length === 2, 'two reads logged');
});

t.test('a client gone before the answer: incoming request is logged, request completed is not, as by Fastify', async (t) => {
  const { logger, records } = recordingLogger('info');
  const l = await lane(t, { logger });
  await storedAndRead(t, l);
  // Runs before the fast lane and Fastify: the connection is gone before either answers.
  const drop = (request: IncomingMessage): void => {
    request.socket.destroy();
  };
  l.ta.app.server.prependListener('request', drop);
  const mark = records.length;
  const seen = l.counter.seen;
  await ask(l.port, INVOICE).catch(() => undefined);
  await ask(l.port, INVOICE, { headers: { 'if-none-match': '"other"' } }).catch(() => undefined);
  await until(() => records.slice(mark).filter((r) => r.msg === 'incoming request').length === 2, 'both requests logged');
  l.ta.app.server.removeListener('request', drop);
  // A last request, answered: its completion is logged after anything the two above could still log.
  t.equal((await ask(l.port, INVOICE)).status, 200);
  await until(() => records.slice(mark).some((r) => r.msg === 'request completed'), 'the last request completed');
  t.equal(l.counter.seen, seen + 1, 'one of the dropped requests went through Fastify (the fast lane answered the others)');
  t.same(records.slice(mark).map((r) => r.msg), ['incoming request', 'incoming request', 'incoming request', 'request completed'], 'no completion for either dropped request');
});

t.test('the fast answers are counted as the route\'s requests, bytes and index look-ups', async (t) => {
  const TOKEN = 'fast-lane-token';
  const dir = t.testdir({ data: {}, tokens: `ci:${tokenDigest(TOKEN)}\n` });
  const config = await loadServerConfig(
    ['-i', '127.0.0.1:0', '-d', join(dir, 'data'), '--token-file', join(dir, 'tokens'),
      '--keyring', vec('scaffolds', 'keys', 'keyring.toml'), '--log-level', 'warn'],
    {}, dir,
  );
  const server = await openServer(config, { hostLabel: 'Test Host <host@bindle.test>' });
  t.teardown(() => server.close());
  const origin = await server.listen();
  const port = Number(new URL(origin).port);
  const { renderInvoice } = await import('../../core/codec/invoice-codec.js');
  const small = Buffer.from('a small parcel');
  const large = Buffer.alloc(100 * 1024, 'a large parcel ');
  const create = await fetch(`${origin}/v1/_i`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml', authorization: `Bearer ${TOKEN}` },
    body: renderInvoice(signedInvoice('example.com/fast', '1.0.0', [{ name: 'small', data: small }, { name: 'large', data: large }])),
  });
  t.equal(create.status, 202);
  for (const data of [small, large]) {
    const stored = await fetch(`${origin}${INVOICE}@${sha256(data)}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: data });
    t.equal(stored.status, 200, 'a parcel stored');
    t.equal((await ask(port, `${INVOICE}@${sha256(data)}`)).status, 200, 'and read once (remembered)');
  }
  t.equal((await ask(port, INVOICE)).status, 200, 'read once (cached)');
  const scrape = async (): Promise<ReturnType<typeof parseScrape>> => parseScrape(await (await fetch(`${origin}/metrics`)).text());
  const before = await scrape();
  const answers = [await ask(port, INVOICE), await ask(port, INVOICE, { method: 'HEAD' }), await ask(port, INVOICE)];
  const after = await scrape();
  const delta = (name: string, labels: Record<string, string>): number => after.value(name, labels) - before.value(name, labels);
  t.equal(delta('bindle_http_requests_total', { method: 'GET', route: '/v1/_i/*', status: '200' }), 2, 'the GETs');
  t.equal(delta('bindle_http_requests_total', { method: 'HEAD', route: '/v1/_i/*', status: '200' }), 1, 'the HEAD');
  t.equal(after.count('bindle_http_request_duration_seconds', { method: 'GET', route: '/v1/_i/*', status: '200' }) -
    before.count('bindle_http_request_duration_seconds', { method: 'GET', route: '/v1/_i/*', status: '200' }), 2, 'timed');
  const sent = answers.reduce((sum, a) => sum + a.body.length, 0);
  t.ok(delta('bindle_http_sent_bytes_total', { route: '/v1/_i/*' }) > sent, `sent bytes: the bodies (${sent}) and the heads`);
  t.ok(delta('bindle_http_received_bytes_total', { route: '/v1/_i/*' }) > 3 * INVOICE.length, 'received bytes: the requests');
  t.equal(after.count('bindle_storage_operation_duration_seconds', { seam: 'invoice_index', operation: 'lookup' }) -
    before.count('bindle_storage_operation_duration_seconds', { seam: 'invoice_index', operation: 'lookup' }), 3, 'one index look-up each');

  // The large parcel's bytes are not kept in memory: its GET goes to the route, its HEAD does not.
  const beforeParcels = await scrape();
  const parcelAnswers = [
    await ask(port, `${INVOICE}@${sha256(small)}`), await ask(port, `${INVOICE}@${sha256(large)}`),
    await ask(port, `${INVOICE}@${sha256(large)}`, { method: 'HEAD' }),
  ];
  t.ok(parcelAnswers[0]?.body.equals(small) && parcelAnswers[1]?.body.equals(large) && parcelAnswers[2]?.body.length === 0, 'the parcels');
  const afterParcels = await scrape();
  const lookups = (s: ReturnType<typeof parseScrape>): number => s.count('bindle_storage_operation_duration_seconds', { seam: 'invoice_index', operation: 'lookup' });
  t.equal(lookups(afterParcels) - lookups(beforeParcels), 3, 'one index look-up each, whether the fast lane or the route answered');
  t.equal(afterParcels.value('bindle_http_requests_total', { method: 'GET', route: '/v1/_i/*', status: '200' }) -
    beforeParcels.value('bindle_http_requests_total', { method: 'GET', route: '/v1/_i/*', status: '200' }), 2, 'both parcel GETs counted');
});
