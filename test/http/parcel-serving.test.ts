/**
 * How parcels and invoices are served (issue 11 items 2, 10, 11): media types are checked at
 * create, parcels carry nosniff, a sandboxing CSP and (for active types) attachment, and GET/HEAD
 * of parcels and invoices follow RFC 9110 conditional requests (If-None-Match with `*`, weak tags
 * and lists; If-Match; If-Range with strong comparison), invoices with a stable ETag. Big
 * parcels go out over real sockets through reused buffers (server/storage/file-read-stream.ts).
 */
import t from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice, sha256, type TestParcel } from '../helpers/bindles.js';
import { printable } from '../helpers/fuzz.js';
import { listenTestApp, makeTestApp, type TestApp } from '../helpers/test-app.js';
import { backendPair } from '../helpers/test-backends.js';
import { pooledBuffers, READ_CHUNK } from '../../server/storage/file-read-stream.js';

const TOML_HEADERS = { 'content-type': 'application/toml' };

async function publish(ta: TestApp, name: string, parcels: readonly TestParcel[]): Promise<void> {
  const invoice = signedInvoice(name, '1.0.0', parcels);
  const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(invoice) });
  if (res.statusCode !== 202) throw new Error(`create failed: ${res.body}`);
  for (const p of parcels) {
    const up = await ta.app.inject({ method: 'POST', url: `/v1/_i/${name}/1.0.0@${sha256(p.data)}`, payload: p.data });
    if (up.statusCode !== 200) throw new Error(`upload failed: ${up.body}`);
  }
}

t.test('a media type that is not RFC 6838 type/subtype[; params] is refused at create, naming the field', async (t) => {
  const ta = await makeTestApp(t);
  const bad = ['text/plain\r\nX-Injected: yes', 'text/plain\u0000', 'text/pläin', 'text/plain\u2028', 'textplain', 'text/', '/plain',
    'text/plain; charset', 'text/plain; charset="utf-8', 'te xt/plain'];
  for (const [i, mediaType] of bad.entries()) {
    const invoice = signedInvoice(`example.com/mt${i}`, '1.0.0', [{ name: 'a', data: Buffer.from(`a${i}`), mediaType }]);
    for (const format of ['toml', 'json'] as const) {
      const res = await ta.app.inject({
        method: 'POST', url: '/v1/_i', headers: { 'content-type': `application/${format}` }, payload: renderInvoice(invoice, format),
      });
      t.equal(res.statusCode, 400, `${printable(mediaType)} (${format}): ${printable(res.body)}`);
      const body = TOML.parse(res.body) as unknown as ErrorReply;
      t.equal(body.code, 'invalid_invoice');
      t.match(body.error, /parcel\[0\]\.label\.mediaType: must be an RFC 6838 media type/, 'the message names the field');
    }
  }
  const good = ['text/plain', 'application/vnd.oci.image.manifest.v1+json', 'text/plain; charset=utf-8', 'text/plain;charset="utf 8"', 'application/wasm'];
  for (const [i, mediaType] of good.entries()) {
    const invoice = signedInvoice(`example.com/ok${i}`, '1.0.0', [{ name: 'a', data: Buffer.from(`b${i}`), mediaType }]);
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(invoice) });
    t.equal(res.statusCode, 202, `${mediaType}: ${res.body}`);
  }
});

t.test('parcels are served with nosniff, a sandboxing CSP, and active types as attachments', async (t) => {
  const ta = await makeTestApp(t);
  const parcels: TestParcel[] = [
    { name: 'page.html', data: Buffer.from('<script>alert(1)</script>'), mediaType: 'text/html' },
    { name: 'pic.svg', data: Buffer.from('<svg onload="alert(1)"/>'), mediaType: 'image/svg+xml; charset=utf-8' },
    { name: 'app.js', data: Buffer.from('alert(1)'), mediaType: 'text/javascript' },
    { name: 'feed.xml', data: Buffer.from('<a/>'), mediaType: 'application/atom+xml' },
    { name: 'notes.txt', data: Buffer.from('plain'), mediaType: 'text/plain' },
    { name: 'mod.wasm', data: Buffer.from('\u0000asm'), mediaType: 'application/wasm' },
  ];
  await publish(ta, 'example.com/active', parcels);
  for (const p of parcels) {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await ta.app.inject({ method, url: `/v1/_i/example.com/active/1.0.0@${sha256(p.data)}` });
      const what = `${method} ${p.mediaType ?? ''}`;
      t.equal(res.statusCode, 200, what);
      t.equal(res.headers['content-type'], p.mediaType, what);
      t.equal(res.headers['x-content-type-options'], 'nosniff', what);
      t.equal(res.headers['content-security-policy'], "sandbox; default-src 'none'", what);
      const active = !['text/plain', 'application/wasm'].includes(p.mediaType ?? '');
      t.equal(res.headers['content-disposition'], active ? 'attachment' : undefined, `${what}: ${active ? 'attachment' : 'inline'}`);
    }
  }
});

t.test('If-None-Match: exact, weak, lists and * answer 304; others 200 (parcels and invoices)', async (t) => {
  const ta = await makeTestApp(t);
  const data = Buffer.from('conditional parcel');
  await publish(ta, 'example.com/cond', [{ name: 'c.txt', data }]);
  const parcelUrl = `/v1/_i/example.com/cond/1.0.0@${sha256(data)}`;
  const invoiceUrl = '/v1/_i/example.com/cond/1.0.0';
  const first = await ta.app.inject({ url: invoiceUrl });
  const invoiceTag = first.headers.etag as string;
  t.match(invoiceTag, /^"[0-9a-f]{64}"$/, 'invoices have a strong ETag');
  t.equal((await ta.app.inject({ url: invoiceUrl })).headers.etag, invoiceTag, 'the same bytes give the same tag');
  const jsonTag = (await ta.app.inject({ url: invoiceUrl, headers: { accept: 'application/json' } })).headers.etag;
  t.not(jsonTag, invoiceTag, 'the JSON representation has its own tag');
  t.equal((await ta.app.inject({ method: 'HEAD', url: invoiceUrl })).headers.etag, invoiceTag, 'HEAD sends the same tag');

  for (const [url, tag] of [[parcelUrl, `"${sha256(data)}"`], [invoiceUrl, invoiceTag]] as const) {
    const cases: Array<[string, number]> = [
      [tag, 304], [`W/${tag}`, 304], [`"nope", ${tag}`, 304], [`"nope",W/${tag} , "x"`, 304], ['*', 304],
      ['"nope"', 200], ['W/"nope", "other"', 200], ['garbage', 200],
    ];
    for (const [value, status] of cases) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await ta.app.inject({ method, url, headers: { 'if-none-match': value } });
        t.equal(res.statusCode, status, `${method} ${url} If-None-Match: ${value}`);
        if (status === 304) t.equal(res.body, '', '304 has no body');
      }
    }
    const ifMatch: Array<[string, number]> = [[tag, 200], ['*', 200], [`"nope", ${tag}`, 200], [`W/${tag}`, 412], ['"nope"', 412]];
    for (const [value, status] of ifMatch) {
      const res = await ta.app.inject({ url, headers: { 'if-match': value } });
      t.equal(res.statusCode, status, `${url} If-Match: ${value}`);
      if (status === 412) t.equal((TOML.parse(res.body) as unknown as ErrorReply).code, 'precondition_failed');
    }
  }

  const yank = await ta.app.inject({ method: 'DELETE', url: invoiceUrl });
  t.equal(yank.statusCode, 200);
  const after = await ta.app.inject({ url: `${invoiceUrl}?yanked=true`, headers: { 'if-none-match': invoiceTag } });
  t.equal(after.statusCode, 200, 'a yank changes the invoice, so the old tag no longer matches');
  t.not(after.headers.etag, invoiceTag);
});

t.test('If-Range: a matching strong tag gives 206, anything else the full 200', async (t) => {
  const ta = await makeTestApp(t);
  const data = Buffer.from('0123456789');
  await publish(ta, 'example.com/range', [{ name: 'r.txt', data }]);
  const url = `/v1/_i/example.com/range/1.0.0@${sha256(data)}`;
  const tag = `"${sha256(data)}"`;
  const cases: Array<[string | undefined, number, string]> = [
    [undefined, 206, '234'], [tag, 206, '234'], ['"other"', 200, '0123456789'], [`W/${tag}`, 200, '0123456789'],
    ['Tue, 01 Dec 2026 00:00:00 GMT', 200, '0123456789'],
  ];
  for (const [ifRange, status, body] of cases) {
    const res = await ta.app.inject({ url, headers: { range: 'bytes=2-4', ...(ifRange === undefined ? {} : { 'if-range': ifRange }) } });
    t.equal(res.statusCode, status, `If-Range: ${ifRange ?? '(none)'}`);
    t.equal(res.body, body);
  }
});

t.test('small parcels (from memory once read) and big ones (streamed) answer GET, HEAD, Range and conditionals alike', async (t) => {
  const ta = await makeTestApp(t);
  const small = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 251));
  const big = Buffer.from(Array.from({ length: 200 * 1024 + 7 }, (_, i) => (i * 7) % 253));
  await publish(ta, 'example.com/sizes', [{ name: 'small.bin', data: small }, { name: 'big.bin', data: big }]);
  for (const data of [small, big]) {
    const url = `/v1/_i/example.com/sizes/1.0.0@${sha256(data)}`;
    const what = `${data.length} bytes`;
    for (let round = 1; round <= 2; round++) {
      const get = await ta.app.inject({ url });
      t.equal(get.statusCode, 200, `${what}, GET ${round}`);
      t.same(get.rawPayload, data);
      t.equal(get.headers['content-length'], String(data.length));
      t.equal(get.headers.etag, `"${sha256(data)}"`);
      t.equal(get.headers['accept-ranges'], 'bytes');
      t.equal(get.headers['x-content-type-options'], 'nosniff');
      const head = await ta.app.inject({ method: 'HEAD', url });
      t.equal(head.statusCode, 200);
      t.equal(head.headers['content-length'], String(data.length));
      t.equal(head.rawPayload.length, 0);
      const range = await ta.app.inject({ url, headers: { range: 'bytes=100-199' } });
      t.equal(range.statusCode, 206, `${what}, Range ${round}`);
      t.same(range.rawPayload, data.subarray(100, 200));
      t.equal(range.headers['content-range'], `bytes 100-199/${data.length}`);
      const suffix = await ta.app.inject({ url, headers: { range: 'bytes=-10' } });
      t.same(suffix.rawPayload, data.subarray(data.length - 10));
      const outside = await ta.app.inject({ url, headers: { range: `bytes=${data.length}-` } });
      t.equal(outside.statusCode, 416);
      t.equal(outside.headers['content-range'], `bytes */${data.length}`);
      t.equal((await ta.app.inject({ url, headers: { 'if-none-match': `"${sha256(data)}"` } })).statusCode, 304);
      t.equal((await ta.app.inject({ url, headers: { 'if-match': '"other"' } })).statusCode, 412);
    }
  }
});

t.test('big parcels over a real socket: concurrent GETs and ranges get their own bytes through reused buffers, an aborted GET harms none', async (t) => {
  const ta = await listenTestApp(t);
  const parcels = [0, 1].map((seed) => ({ name: `p${seed}.bin`, data: Buffer.from(Array.from({ length: 3 * READ_CHUNK + 999 }, (_, i) => (i * (seed + 3)) % 251)) }));
  await publish(ta, 'example.com/big', parcels);
  const urls = parcels.map((p) => `${ta.url}_i/example.com/big/1.0.0@${sha256(p.data)}`);
  const bytes = async (url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> => {
    const res = await fetch(url, { headers });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };
  const aborted = new AbortController();
  const cut = await fetch(urls[0] ?? '', { signal: aborted.signal });
  await cut.body?.getReader().read();
  aborted.abort();
  for (let round = 0; round < 3; round++) {
    const [a, b, range] = await Promise.all([bytes(urls[0] ?? ''), bytes(urls[1] ?? ''), bytes(urls[1] ?? '', { range: `bytes=5-${READ_CHUNK + 5}` })]);
    t.ok(a.status === 200 && a.body.equals(parcels[0]?.data ?? Buffer.alloc(0)), `round ${round}: parcel 0`);
    t.ok(b.status === 200 && b.body.equals(parcels[1]?.data ?? Buffer.alloc(0)), `round ${round}: parcel 1`);
    t.ok(range.status === 206 && range.body.equals(parcels[1]?.data.subarray(5, READ_CHUNK + 6) ?? Buffer.alloc(0)), `round ${round}: a range`);
  }
  // Only the file store reads through the pooled buffers (the S3 store streams the service's reply).
  if (backendPair() !== 'sqlite+file') return;
  // A client may read a body's last byte before the server has run that write's callback,
  // which is what returns its buffer to the pool: wait for the callbacks (bounded, not timed).
  for (let waited = 0; pooledBuffers() === 0 && waited < 30_000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(pooledBuffers() > 0, 'the responses went out through pooled buffers');
});
