/**
 * `/_q`: strict and standard search, SemVer versions and ranges, paging, yanked filtering,
 * parameter validation and HEAD; plus `/healthz` and unknown routes.
 */
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { QueryReply } from '../../schema/index.js';
import { renderDocument } from '../../core/codec/document-codec.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice } from '../helpers/bindles.js';
import { Fuzz, printable } from '../helpers/fuzz.js';
import { withEventLoopTurns } from '../helpers/event-loop-turns.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';

async function seed(ta: TestApp): Promise<void> {
  const bindles: Array<[string, string, string]> = [
    ['example.com/alpha', '1.0.0', 'first letter'],
    ['example.com/alpha', '1.2.0', 'first letter'],
    ['example.com/alpha', '1.10.0', 'first letter'],
    ['example.com/alpha', '2.0.0-rc.1', 'first letter'],
    ['example.com/beta', '0.1.0', 'second letter, about warp cores'],
    ['other.org/gamma', '3.0.0', 'third letter'],
  ];
  for (const [name, version, description] of bindles) {
    const inv = signedInvoice(name, version, [], { description, authors: ['Jean-Luc Picard <engage@ufp.com>'] });
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(inv) });
    if (res.statusCode !== 201) throw new Error(`seed failed: ${res.body}`);
  }
  await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/alpha/1.2.0' });
}

async function q(ta: TestApp, query: string): Promise<QueryReply> {
  const res = await ta.app.inject({ url: `/v1/_q${query}`, headers: { accept: 'application/json' } });
  if (res.statusCode !== 200) throw new Error(`query ${query} failed: ${res.statusCode} ${res.body}`);
  return JSON.parse(res.body) as QueryReply;
}

const ids = (r: QueryReply): string[] => r.invoices.map((i) => `${i.bindle.name}/${i.bindle.version}`);

t.test('query', async (t) => {
  const ta = await makeTestApp(t);
  await seed(ta);

  let r = await q(ta, '');
  t.same(ids(r), [
    'example.com/alpha/2.0.0-rc.1', 'example.com/alpha/1.10.0', 'example.com/alpha/1.0.0',
    'example.com/beta/0.1.0', 'other.org/gamma/3.0.0',
  ], 'name order, SemVer descending, yanked excluded');
  t.equal(r.total, 5);
  t.equal(r.more, false);
  t.type(r.timestamp, 'number');

  r = await q(ta, '?yanked=true');
  t.equal(r.total, 6, 'yanked included on request');
  t.equal(r.yanked, true);

  r = await q(ta, '?q=example.com/&strict=true');
  t.equal(r.total, 4, 'strict: substring of the name');
  t.equal(r.strict, true);
  r = await q(ta, '?q=warp&strict=true');
  t.equal(r.total, 0, 'strict mode ignores descriptions');
  r = await q(ta, '?q=warp');
  t.same(ids(r), ['example.com/beta/0.1.0'], 'standard mode searches descriptions');
  r = await q(ta, '?query=letter%20third');
  t.same(ids(r), ['other.org/gamma/3.0.0'], 'terms are AND-ed');
  r = await q(ta, '?q=picard');
  t.equal(r.total, 5, 'authors are searched');

  r = await q(ta, '?q=alpha&v=1.0.0');
  t.same(ids(r), ['example.com/alpha/1.0.0'], 'exact version');
  r = await q(ta, '?q=alpha&v=%5E1.0.0');
  t.same(ids(r), ['example.com/alpha/1.10.0', 'example.com/alpha/1.0.0'], 'caret range');
  r = await q(ta, '?version=%3E%3D1.5.0');
  t.same(ids(r), ['example.com/alpha/1.10.0', 'other.org/gamma/3.0.0'], '>= range');

  r = await q(ta, '?l=2');
  t.equal(r.invoices.length, 2);
  t.equal(r.more, true);
  t.equal(r.limit, 2);
  const page2 = await q(ta, '?l=2&o=2');
  t.same(ids(page2), ['example.com/alpha/1.0.0', 'example.com/beta/0.1.0']);
  t.equal(page2.offset, 2);
  const page3 = await q(ta, '?limit=2&offset=4');
  t.same(ids(page3), ['other.org/gamma/3.0.0']);
  t.equal(page3.more, false);

  const toml = await ta.app.inject({ url: '/v1/_q?q=gamma' });
  t.match(toml.headers['content-type'], /application\/toml/);
  const parsed = TOML.parse(toml.body) as unknown as QueryReply;
  t.equal(parsed.total, 1);
  t.equal(parsed.invoices[0]?.bindle.name, 'other.org/gamma');

  const head = await ta.app.inject({ method: 'HEAD', url: '/v1/_q?q=gamma' });
  t.equal(head.statusCode, 200);
  t.equal(head.body, '');

  for (const bad of ['?l=0', '?l=256', '?o=-1', '?strict=maybe', '?v=not-a-range!!', '?bogus=1', '?q=a&query=b']) {
    const res = await ta.app.inject({ url: `/v1/_q${bad}` });
    t.equal(res.statusCode, 400, bad);
    t.equal((TOML.parse(res.body) as { code: string }).code, 'invalid_query', bad);
  }
});

t.test('healthz and unknown routes', async (t) => {
  const ta = await makeTestApp(t);
  let res = await ta.app.inject({ url: '/healthz' });
  t.equal(res.statusCode, 200);
  t.same(JSON.parse(res.body), { status: 'OK', version: 'test' });
  res = await ta.app.inject({ url: '/v1/nothing-here' });
  t.equal(res.statusCode, 404);
  t.equal((TOML.parse(res.body) as { code: string }).code, 'not_found');
});

t.test('the number and length of query terms are capped with invalid_query, never a 500', async (t) => {
  const ta = await makeTestApp(t);
  await seed(ta);
  const cases: Array<[string, string]> = [
    ['997 short terms', `q=${Array.from({ length: 997 }, () => 'ab').join('%20')}`],
    ['33 terms', `q=${Array.from({ length: 33 }, (_, i) => `t${i}`).join('%20')}`],
    ['a 1025-character query', `q=${'a'.repeat(1025)}`],
    ['a 257-character version range', `v=${encodeURIComponent(Array.from({ length: 40 }, (_, i) => `1.0.${i}`).join('||'))}`],
  ];
  for (const [what, query] of cases) {
    const res = await ta.app.inject({ url: `/v1/_q?${query}` });
    t.equal(res.statusCode, 400, `${what}: ${res.body.slice(0, 200)}`);
    const body = TOML.parse(res.body) as { code: string; error: string };
    t.equal(body.code, 'invalid_query', what);
    t.match(body.error, /at most \d+ (terms|are allowed)/, `${what}: the message states the limit`);
  }
  t.equal((await ta.app.inject({ url: `/v1/_q?q=${Array.from({ length: 32 }, () => 'ab').join('%20')}` })).statusCode, 200, '32 terms are fine');
});

/** True when a reply body is an error document with a code, in TOML or JSON. */
function hasErrorBody(body: string): boolean {
  return /"?code"?\s*[=:]\s*"[a-z_]+"/.test(body) && /"?error"?\s*[=:]\s*"/.test(body);
}

/** encodeURIComponent, with a lone surrogate sent as the invalid UTF-8 it would be. */
function percentEncode(text: string): string {
  return text.replace(/[\ud800-\udfff]/gu, '\u0000').split('\u0000').map((part) => encodeURIComponent(part)).join('%ED%A0%80');
}

/** Only what cannot be on a request line is encoded: `%`, `&`, `=`, `+` and the rest stay raw. */
function percentEncodeLoosely(text: string): string {
  return text.replace(/[^\x21-\x7e]/gu, (c) => percentEncode(c));
}

t.test('fuzzed _q parameters (fixed seed) never get a 5xx, and every 4xx has an error body', async (t) => {
  const ta = await makeTestApp(t);
  await seed(ta);
  const fuzz = new Fuzz(0x5eed_0001);
  const names = ['q', 'query', 'v', 'version', 'o', 'offset', 'l', 'limit', 'strict', 'yanked', 'x', ''];
  const bad: string[] = [];
  const statuses = new Set<number>();
  for (let i = 0; i < 400 && bad.length < 5; i++) {
    const params = Array.from({ length: 1 + fuzz.int(4) }, () => {
      const value = fuzz.int(8) === 0 ? Array.from({ length: 1 + fuzz.int(1200) }, () => fuzz.string(3)).join(' ') : fuzz.string(40);
      return `${encodeURIComponent(fuzz.pick(names))}=${fuzz.int(3) === 0 ? percentEncodeLoosely(fuzz.string(12)) : percentEncode(value)}`;
    });
    const url = `/v1/_q?${params.join('&')}`;
    const res = await ta.app.inject({ url, headers: { accept: fuzz.pick(['application/json', 'application/toml', '*/*']) } });
    statuses.add(res.statusCode);
    if (res.statusCode >= 500 || (res.statusCode >= 400 && !hasErrorBody(res.body))) {
      bad.push(`${res.statusCode} for ${printable(url.slice(0, 300))}: ${printable(res.body.slice(0, 300))}`);
    }
  }
  t.same(bad, [], 'no 5xx, and an error body with a code on every 4xx');
  t.ok(statuses.has(200) && statuses.has(400), `the fuzz reaches both answers (got ${[...statuses].join(', ')})`);
});

t.test('a large _q reply is rendered in slices (TOML; JSON sends the stored text), the event loop free in between, with the same bytes', async (t) => {
  const ta = await makeTestApp(t);
  const count = 60;
  for (let i = 0; i < count; i++) {
    const inv = signedInvoice('example.com/many', `1.0.${i}`, [{ name: `f-${i}.txt`, data: Buffer.from(`parcel ${i}`) }], { description: 'one of many' });
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(inv) });
    t.equal(res.statusCode, 202, res.body);
  }
  for (const accept of ['application/toml', 'application/json']) {
    const { result: res, turns } = await withEventLoopTurns(() => ta.app.inject({ url: '/v1/_q?q=many&l=100', headers: { accept } }));
    t.equal(res.statusCode, 200);
    // TOML invoice tables are rendered in a shared queue that lets the event loop turn at least
    // every few milliseconds (server/http/query-reply.ts); JSON replies carry each invoice's
    // stored JSON text as it is (nothing to render).
    if (accept === 'application/toml') t.ok(turns >= 1, `${accept}: ${turns} event-loop turns passed while ${count} invoices were rendered`);
    const reply = (accept === 'application/json' ? JSON.parse(res.body) : TOML.parse(res.body)) as unknown as QueryReply;
    t.equal(reply.invoices.length, count);
    const format = accept === 'application/json' ? 'json' : 'toml';
    t.equal(res.body, renderDocument(reply, format), `${format}: the same bytes as rendering at once`);
    const head = await ta.app.inject({ method: 'HEAD', url: '/v1/_q?q=many&l=100', headers: { accept } });
    t.equal(head.headers['content-length'], String(Buffer.byteLength(res.body)), 'HEAD gives the GET\'s length');
  }
});

t.test('many large _q requests at once: /healthz is answered between them, not after them all, and every reply has the same bytes', async (t) => {
  const ta = await makeTestApp(t);
  const parcels = Array.from({ length: 40 }, (_, p) => ({ name: `file-${p}.txt`, data: Buffer.from(`parcel ${p}`) }));
  for (let i = 0; i < 20; i++) {
    const inv = signedInvoice('example.com/crowd', `1.0.${i}`, parcels, { description: 'a crowd of big invoices' });
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(inv) });
    t.equal(res.statusCode, 202, res.body);
  }
  const url = '/v1/_q?q=crowd&l=50';
  const expected = await ta.app.inject({ url });
  t.equal(expected.statusCode, 200);
  // The real search, with a record of when each one reads the index.
  const events: string[] = [];
  const search = ta.service.query.bind(ta.service);
  ta.service.query = async (q) => {
    events.push('search');
    return search(q);
  };
  const requests = 30;
  const queries = Array.from({ length: requests }, () => ta.app.inject({ url }));
  const health = await ta.app.inject({ url: '/healthz' });
  events.push('healthz');
  t.equal(health.statusCode, 200);
  const replies = await Promise.all(queries);
  const withoutTimestamp = (body: string): string => body.replace(/^timestamp = \d+$/m, '');
  for (const res of replies) {
    t.equal(res.statusCode, 200);
    t.equal(res.headers['content-length'], expected.headers['content-length']);
  }
  t.ok(replies.every((res) => withoutTimestamp(res.body) === withoutTimestamp(expected.body)), `all ${requests} replies are the page read alone`);
  // The admission gate (server/http/admission-gate.ts) starts one search per turn of the event
  // loop, so /healthz, asked right after the 30 searches, does not wait until all of them ran.
  const before = events.indexOf('healthz');
  t.ok(before < requests / 2, `/healthz answered after ${before} of ${requests} searches ran`);
});

/**
 * 30 searches from one client, four of them under way (the admission gate's limit), then one
 * from another: the position at which the other one's search started.
 */
async function otherClientsTurn(
  t: Test,
  opts: { trustProxy?: string[]; flood: { remoteAddress: string; headers?: Record<string, string> }; other: { remoteAddress: string; headers?: Record<string, string> } },
): Promise<{ position: number; events: string[] }> {
  const ta = await makeTestApp(t, opts.trustProxy !== undefined ? { trustProxy: opts.trustProxy } : {});
  for (let i = 0; i < 3; i++) {
    const inv = signedInvoice('example.com/crowd', `1.0.${i}`, [], { description: 'a crowd' });
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(inv) });
    t.equal(res.statusCode, 201, res.body);
  }
  // The real search, with a record of whose search reads the index when; the flood's searches
  // wait until the other client's request has come, so that it finds the flood queued.
  const events: string[] = [];
  let otherCame = (): void => undefined;
  const otherHasCome = new Promise<void>((resolve) => {
    otherCame = resolve;
  });
  const search = ta.service.query.bind(ta.service);
  ta.service.query = async (q) => {
    const flood = !q.strict;
    events.push(flood ? 'flood' : 'other');
    if (flood) await otherHasCome;
    return search(q);
  };
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const requests = 30;
  const flood = Array.from({ length: requests }, () => ta.app.inject({ url: '/v1/_q?q=crowd', ...opts.flood }));
  while (events.length < 4) await turn();
  for (let i = 0; i < 20; i++) await turn();
  t.equal(events.length, 4, 'four of the flood\'s searches run (the gate\'s limit), the rest wait');
  const other = ta.app.inject({ url: '/v1/_q?q=example.com/crowd&strict=true&l=1', ...opts.other });
  for (let i = 0; i < 20; i++) await turn();
  otherCame();
  const otherReply = await other;
  t.equal(otherReply.statusCode, 200, otherReply.body);
  t.match(otherReply.body, /total = 3/);
  const floodReplies = await Promise.all(flood);
  t.ok(floodReplies.every((res) => res.statusCode === 200 && /total = 3/.test(res.body)), 'every query of the flood is answered');
  t.equal(events.length, requests + 1);
  return { position: events.indexOf('other'), events };
}

t.test('many _q requests from one client: another client\'s query takes its turn among them, not after them all', async (t) => {
  // The admission gate (server/http/admission-gate.ts) lets client addresses take turns: once
  // slots free, the flood's address (waiting first) starts one, then the other address: the 6th
  // search, not the 31st.
  t.test('two addresses', async (t) => {
    const { position, events } = await otherClientsTurn(t, { flood: { remoteAddress: '192.0.2.1' }, other: { remoteAddress: '192.0.2.2' } });
    t.equal(position, 5, `the other address's search ran after the 4 flood searches under way and one more (${events.join(' ')})`);
  });
  t.test('two clients behind a trusted proxy: the addresses it forwards take turns', async (t) => {
    const { position, events } = await otherClientsTurn(t, {
      trustProxy: ['10.0.0.0/8'],
      flood: { remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '192.0.2.1' } },
      other: { remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '192.0.2.2' } },
    });
    t.equal(position, 5, `the other client's search ran after the 4 flood searches under way and one more (${events.join(' ')})`);
  });
  t.test('behind a proxy that is not trusted every client is its address: first come, first served', async (t) => {
    const { position, events } = await otherClientsTurn(t, {
      flood: { remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '192.0.2.1' } },
      other: { remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '192.0.2.2' } },
    });
    t.equal(position, 30, `the other client's search ran last (${events.join(' ')})`);
  });
});
