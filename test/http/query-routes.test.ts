/**
 * `/_q`: strict and standard search, SemVer versions and ranges, paging, yanked filtering,
 * parameter validation and HEAD; plus `/healthz` and unknown routes.
 */
import t from 'tap';
import TOML from '@iarna/toml';
import type { QueryReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice } from '../helpers/bindles.js';
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
