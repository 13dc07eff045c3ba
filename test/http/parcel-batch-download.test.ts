/**
 * GET /_i/{name}/{version}?parcels=<sha256>,… (server/http/parcel-batch-download.ts,
 * server/routes/invoice-routes.ts): the named parcels of the invoice in one multipart/form-data
 * body, read back here by @fastify/busboy, not by our client; HEAD answers the same headers; every parcel is looked up before anything is sent, so a
 * bad list or a parcel its single GET would refuse gets the same 4xx with a body. A batch has no
 * ETag, and Range and conditional headers do not apply to it.
 */
import { Readable } from 'node:stream';
import { Busboy } from '@fastify/busboy';
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { Action, Authorizer, Principal } from '../../server/auth/types.js';
import { MAX_BATCH_DOWNLOAD_PARCELS } from '../../server/http/parcel-batch-download.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { listenTestApp, makeTestApp, type TestApp, type TestAppOptions } from '../helpers/test-app.js';

const NAME = 'example.com/batch-download';
const INVOICE = `/v1/_i/${NAME}/1.0.0`;
const parcels: TestParcel[] = [
  { name: 'a.txt', data: Buffer.from('alpha'), mediaType: 'text/plain; charset=utf-8' },
  { name: 'b.bin', data: Buffer.alloc(200_000, 3) },
  { name: 'empty', data: Buffer.alloc(0) },
  { name: 'page.html', data: Buffer.from('<script>alert(1)</script>'), mediaType: 'text/html' },
];
const [a, b, empty, page] = parcels.map((p) => ({ ...p, sha: sha256(p.data) })) as Array<TestParcel & { sha: string }> as [
  TestParcel & { sha: string }, TestParcel & { sha: string }, TestParcel & { sha: string }, TestParcel & { sha: string },
];
/** A parcel on the invoice that is never uploaded. */
const absent = { name: 'absent.txt', data: Buffer.from('never uploaded') };

async function withParcels(t: Test, opts: TestAppOptions = {}): Promise<TestApp> {
  const ta = await makeTestApp(t, opts);
  const created = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(signedInvoice(NAME, '1.0.0', [...parcels, absent])),
  });
  t.equal(created.statusCode, 202, created.body);
  for (const p of [a, b, empty, page]) {
    const res = await ta.app.inject({ method: 'POST', url: `${INVOICE}@${p.sha}`, payload: p.data });
    t.equal(res.statusCode, 200, res.body);
  }
  return ta;
}

/** The parts of a multipart/form-data body, in order. */
function partsOf(body: Buffer, contentType: string): Promise<Array<{ name: string; filename: string; type: string; data: Buffer }>> {
  return new Promise((resolve, reject) => {
    const parts: Array<Promise<{ name: string; filename: string; type: string; data: Buffer }>> = [];
    const parser = Busboy({ headers: { 'content-type': contentType } });
    parser.on('file', (name, stream, filename, _encoding, type) => {
      parts.push((async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
        return { name, filename, type, data: Buffer.concat(chunks) };
      })());
    });
    parser.on('error', reject);
    parser.on('finish', () => resolve(Promise.all(parts)));
    Readable.from([body]).pipe(parser);
  });
}

function errorOf(body: string): ErrorReply {
  return TOML.parse(body) as unknown as ErrorReply;
}

t.test('the named parcels in one multipart/form-data body', async (t) => {
  const ta = await withParcels(t);
  const res = await ta.app.inject({ url: `${INVOICE}?parcels=${[a.sha, b.sha, empty.sha, page.sha].join(',')}` });
  t.equal(res.statusCode, 200, res.body.slice(0, 200));
  const type = String(res.headers['content-type']);
  t.match(type, /^multipart\/form-data; boundary=bindle-[0-9a-f]{32}$/);
  t.equal(Number(res.headers['content-length']), res.rawPayload.length, 'Content-Length is the body\'s length');
  t.equal(res.headers['x-content-type-options'], 'nosniff', 'protective headers, as for a parcel');
  t.match(String(res.headers['content-security-policy']), /sandbox/);
  const parts = await partsOf(res.rawPayload, type);
  t.same(parts.map((p) => p.name), [a.sha, b.sha, empty.sha, page.sha], 'one part per parcel, named by its sha256, in the order asked');
  for (const [i, p] of [a, b, empty, page].entries()) {
    t.ok(parts[i]?.data.equals(p.data), `${p.name}: the same bytes`);
    t.equal(parts[i]?.filename, `${p.sha}.dat`);
    t.equal(parts[i]?.type, (p.mediaType ?? 'text/plain').split(';')[0], `${p.name}: its label's media type (busboy gives its essence)`);
  }
  const text = res.rawPayload.toString('latin1');
  t.match(text, `Content-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nalpha\r\n`, 'each part with its label\'s media type and its length');

  const head = await ta.app.inject({ method: 'HEAD', url: `${INVOICE}?parcels=${[a.sha, b.sha, empty.sha, page.sha].join(',')}` });
  t.equal(head.statusCode, 200);
  t.equal(head.rawPayload.length, 0, 'HEAD: no body');
  t.equal(head.headers['content-length'], res.headers['content-length'], 'HEAD: the same length');
});

t.test('a digest listed twice is sent once; one parcel is a batch too', async (t) => {
  const ta = await withParcels(t);
  const res = await ta.app.inject({ url: `${INVOICE}?parcels=${a.sha},${a.sha}` });
  t.equal(res.statusCode, 200);
  t.same((await partsOf(res.rawPayload, String(res.headers['content-type']))).map((p) => p.name), [a.sha]);
});

t.test('no ETag, a boundary of its own each time; Range and conditional headers do not apply: the whole body', async (t) => {
  const ta = await withParcels(t);
  const url = `${INVOICE}?parcels=${a.sha},${b.sha}`;
  const plain = await ta.app.inject({ url });
  t.equal(plain.statusCode, 200);
  t.equal(plain.headers.etag, undefined, 'no ETag');
  const again = await ta.app.inject({ url });
  t.not(again.headers['content-type'], plain.headers['content-type'], 'a new boundary for every reply');
  for (const headers of [{ range: 'bytes=0-3' }, { 'if-none-match': '*' }, { 'if-match': '"x"' }, { 'if-range': `"${a.sha}"`, range: 'bytes=0-3' }]) {
    const res = await ta.app.inject({ url, headers });
    const what = JSON.stringify(headers);
    t.equal(res.statusCode, 200, `${what}: 200`);
    t.equal(Number(res.headers['content-length']), plain.rawPayload.length, `${what}: the whole body`);
    t.same((await partsOf(res.rawPayload, String(res.headers['content-type']))).map((p) => p.name), [a.sha, b.sha], `${what}: every part`);
  }
});

t.test('a bad list or a parcel its single GET refuses: the same 4xx with a body, nothing sent', async (t) => {
  const ta = await withParcels(t);
  const get = async (query: string, status: number, code: string, error?: RegExp): Promise<void> => {
    const res = await ta.app.inject({ url: `${INVOICE}?${query}` });
    t.equal(res.statusCode, status, `${query.slice(0, 60)}: ${res.body.slice(0, 200)}`);
    t.match(res.headers['content-type'], /^application\/toml/, 'an error document, not a multipart body');
    t.match(errorOf(res.body), { code, ...(error === undefined ? {} : { error }) });
  };
  await get('parcels=', 400, 'invalid_query', /sha256 digests/);
  await get(`parcels=${a.sha},nope`, 400, 'invalid_query', /"nope" is not one/);
  await get(`parcels=${a.sha.toUpperCase()}`, 400, 'invalid_query');
  await get(`parcels=${a.sha}&parcels=${b.sha}`, 400, 'invalid_query', /more than once/);
  await get(`parcels=${a.sha}&limit=3`, 400, 'invalid_query', /limit/);
  const many = Array.from({ length: MAX_BATCH_DOWNLOAD_PARCELS + 1 }, (_, i) => sha256(Buffer.from(String(i))));
  await get(`parcels=${many.join(',')}`, 400, 'invalid_query', new RegExp(`at most ${MAX_BATCH_DOWNLOAD_PARCELS}`));
  const single = await ta.app.inject({ url: `${INVOICE}@${sha256(absent.data)}` });
  await get(`parcels=${a.sha},${sha256(absent.data)}`, single.statusCode, errorOf(single.body).code ?? '', /not been uploaded/);
  const stranger = sha256(Buffer.from('not on the invoice'));
  const notListed = await ta.app.inject({ url: `${INVOICE}@${stranger}` });
  await get(`parcels=${stranger}`, notListed.statusCode, errorOf(notListed.body).code ?? '');
  await get(`parcels=${sha256(absent.data)},${stranger}`, notListed.statusCode, errorOf(notListed.body).code ?? '', /not listed on invoice/);
  const noInvoice = await ta.app.inject({ url: `/v1/_i/${NAME}/9.9.9?parcels=${a.sha}` });
  t.equal(noInvoice.statusCode, 404, 'no such invoice: 404');
});

t.test('a yanked invoice\'s parcels need yanked=true, as a single GET does', async (t) => {
  const ta = await withParcels(t);
  t.equal((await ta.app.inject({ method: 'DELETE', url: INVOICE })).statusCode, 200);
  const single = await ta.app.inject({ url: `${INVOICE}@${a.sha}` });
  const refused = await ta.app.inject({ url: `${INVOICE}?parcels=${a.sha}` });
  t.equal(refused.statusCode, single.statusCode, `the single GET's status: ${single.statusCode}`);
  t.equal(errorOf(refused.body).code, errorOf(single.body).code);
  const allowed = await ta.app.inject({ url: `${INVOICE}?parcels=${a.sha}&yanked=true` });
  t.equal(allowed.statusCode, 200, allowed.body.slice(0, 200));
});

t.test('reads need what the authorizer asks of any read', async (t) => {
  /** Refuses anonymous callers everything. */
  class NoAnonymous implements Authorizer {
    authorize(principal: Principal | undefined, _action: Action): void {
      if (principal === undefined) throw new BindleError('unauthenticated', 'log in first');
    }
  }
  const locked = await makeTestApp(t, { authorizer: new NoAnonymous() });
  const res = await locked.app.inject({ url: `${INVOICE}?parcels=${a.sha}` });
  t.equal(res.statusCode, 401, res.body);
  t.equal(errorOf(res.body).code, 'unauthenticated');
});

t.test('the longest list the server takes fits the request line Node accepts', async (t) => {
  const server = await listenTestApp(t);
  const list = Array.from({ length: MAX_BATCH_DOWNLOAD_PARCELS }, (_, i) => sha256(Buffer.from(`parcel ${i}`)));
  const res = await fetch(`${server.url}_i/${NAME}/1.0.0?parcels=${list.join(',')}`);
  t.equal(res.status, 404, 'the bindle is not there: its 404, not 431 for the URL');
  t.match(await res.text(), /code = "not_found"/);
});
