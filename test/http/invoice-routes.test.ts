/**
 * `/_i` invoice routes: every error case of PROTOCOL.md §3 for create, negotiation of bodies
 * and replies, GET/HEAD/DELETE statuses and yank.
 */
import t from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply, Invoice, InvoiceCreateReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { createSecretKey } from '../../core/signing/keys.js';
import { PREPARED_BUFFER_UNITS } from '../../server/http/reply.js';
import { signInvoice } from '../../core/signing/sign.js';
import { signedInvoice, sha256 } from '../helpers/bindles.js';
import { rawExchange } from '../helpers/raw-http.js';
import { listenTestApp, makeTestApp } from '../helpers/test-app.js';

const TOML_HEADERS = { 'content-type': 'application/toml' };
const parcels = [{ name: 'a.txt', data: Buffer.from('alpha') }, { name: 'b.txt', data: Buffer.from('bravo') }];

function errorOf(body: string): ErrorReply {
  return TOML.parse(body) as unknown as ErrorReply;
}

t.test('create accepts TOML, JSON and JSON without a content type', async (t) => {
  const ta = await makeTestApp(t);
  const a = signedInvoice('example.com/toml', '1.0.0', parcels);
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(a) });
  t.equal(res.statusCode, 202, res.body);
  t.match(res.headers['content-type'], /application\/toml/);
  const b = signedInvoice('example.com/json', '1.0.0', parcels);
  res = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/json', accept: 'application/json' }, payload: renderInvoice(b, 'json'),
  });
  t.equal(res.statusCode, 202, res.body);
  t.match(res.headers['content-type'], /application\/json/);
  const reply = JSON.parse(res.body) as InvoiceCreateReply;
  t.equal(reply.missing?.length, 2);
  t.equal(reply.invoice.signature?.length, 2);
  const c = signedInvoice('example.com/nocontenttype', '1.0.0', parcels);
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', payload: Buffer.from(renderInvoice(c, 'json')) });
  t.equal(res.statusCode, 202, `JSON without Content-Type: ${res.body}`);
});

t.test('create error cases', async (t) => {
  const ta = await makeTestApp(t);
  const post = (payload: string, headers: Record<string, string> = TOML_HEADERS) =>
    ta.app.inject({ method: 'POST', url: '/v1/_i', headers, payload });
  const good = signedInvoice('example.com/good', '1.0.0', parcels);
  const cases: Array<[string, string, number, string, Record<string, string>?]> = [
    ['bad TOML', 'bindleVersion = "1.0.0"\n[bindle\nname=', 400, 'malformed_body'],
    ['bad JSON', '{"bindleVersion": ', 400, 'malformed_body', { 'content-type': 'application/json' }],
    ['empty body', '', 400, 'malformed_body'],
    ['unknown field', `${renderInvoice(good)}\nsurprise = 1\n`, 400, 'invalid_invoice'],
    ['wrong content type', renderInvoice(good), 415, 'unsupported_media_type', { 'content-type': 'text/plain' }],
  ];
  for (const [what, payload, status, code, headers] of cases) {
    const res = await post(payload, headers);
    t.equal(res.statusCode, status, `${what}: ${res.body}`);
    t.equal(errorOf(res.body).code, code, what);
    t.type(errorOf(res.body).error, 'string');
  }
  const unknownField = await post(`${renderInvoice(good)}\nsurprise = 1\n`);
  t.match(errorOf(unknownField.body).error, /surprise: unknown field/, 'the message names the field');

  for (const name of ['../x', 'a//b', 'a@b', '', 'a b']) {
    const inv = signedInvoice('placeholder', '1.0.0', parcels);
    inv.bindle.name = name;
    const res = await post(renderInvoice(inv));
    t.equal(res.statusCode, 400, `name ${JSON.stringify(name)}`);
    t.match(errorOf(res.body).code, /invalid_name|invalid_invoice/);
  }
  for (const version of ['v1.0.0', '1.0', '01.0.0']) {
    const inv = signedInvoice('example.com/v', '1.0.0', parcels);
    inv.bindle.version = version;
    const res = await post(renderInvoice(inv));
    t.equal(res.statusCode, 400, `version ${version}`);
    t.equal(errorOf(res.body).code, 'invalid_version');
  }

  const unsigned: Invoice = { ...good, bindle: { ...good.bindle, name: 'example.com/unsigned' } };
  delete unsigned.signature;
  let res = await post(renderInvoice(unsigned));
  t.equal(res.statusCode, 400, 'unsigned invoice');
  t.equal(errorOf(res.body).code, 'unverified');

  const stranger = signedInvoice('example.com/stranger', '1.0.0', parcels, { key: createSecretKey('Stranger', ['creator']) });
  res = await post(renderInvoice(stranger));
  t.equal(res.statusCode, 400, 'unknown creator key');
  t.match(errorOf(res.body).code, /unknown_signing_key|no_known_key/);

  const tampered = signedInvoice('example.com/tampered', '1.0.0', parcels);
  tampered.bindle.version = '1.0.1';
  res = await post(renderInvoice(tampered));
  t.equal(res.statusCode, 400, 'tampered signature');
  t.equal(errorOf(res.body).code, 'unverified');

  res = await post(renderInvoice(good));
  t.equal(res.statusCode, 202);
  res = await post(renderInvoice(good));
  t.equal(res.statusCode, 409, 'duplicate');
  t.equal(errorOf(res.body).code, 'already_exists');

  const yanked = signedInvoice('example.com/yanked', '1.0.0', parcels, { extra: { yanked: true } });
  res = await post(renderInvoice(yanked));
  t.equal(res.statusCode, 422, 'yanked create');
  t.equal(errorOf(res.body).code, 'yanked_create');

  const fakeSha = signInvoice(
    { bindleVersion: '1.0.0', bindle: { name: 'example.com/fake', version: '1.0.0' }, parcel: [{ label: { sha256: 'abc123', mediaType: 'text/plain', name: 'x', size: 1 } }] },
    'creator',
    (await import('../helpers/bindles.js')).creatorKey(),
  );
  res = await post(renderInvoice(fakeSha));
  t.equal(res.statusCode, 400, 'a parcel sha that is not a sha256');
  t.match(errorOf(res.body).error, /parcel\[0\]\.label\.sha256/);
});

t.test('error bodies follow the Accept header', async (t) => {
  const ta = await makeTestApp(t);
  const res = await ta.app.inject({ url: '/v1/_i/example.com/none/1.0.0', headers: { accept: 'application/json' } });
  t.equal(res.statusCode, 404);
  t.match(res.headers['content-type'], /application\/json/);
  t.same(JSON.parse(res.body), { error: 'invoice example.com/none/1.0.0 not found', code: 'not_found' });
  const res2 = await ta.app.inject({ url: '/v1/_i/example.com/none/1.0.0', headers: { accept: 'text/html, application/json+bindle;q=0.5' } });
  t.match(res2.headers['content-type'], /application\/json/, 'json+bindle picks JSON');
  const refused = await ta.app.inject({ url: '/v1/_i/example.com/none/1.0.0', headers: { accept: 'application/json;q=0, application/toml' } });
  t.match(refused.headers['content-type'], /application\/toml/, 'a type refused with q=0 is not picked');
  const allRefused = await ta.app.inject({ url: '/v1/_i/example.com/none/1.0.0', headers: { accept: 'application/json; q=0.0, text/html' } });
  t.match(allRefused.headers['content-type'], /application\/toml/, 'with JSON refused, the default');
  const weighted = await ta.app.inject({ url: '/v1/_i/example.com/none/1.0.0', headers: { accept: 'application/json;q=0.1' } });
  t.match(weighted.headers['content-type'], /application\/json/, 'a low but non-zero weight still counts');
});

t.test('too large invoice → 413', async (t) => {
  const ta = await makeTestApp(t, { maxInvoiceBytes: 1024 });
  const big = signedInvoice('example.com/big', '1.0.0', parcels, { description: 'x'.repeat(4096) });
  const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(big) });
  t.equal(res.statusCode, 413, res.body);
  t.equal(errorOf(res.body).code, 'payload_too_large');
});

t.test('GET, HEAD and DELETE of an invoice', async (t) => {
  const ta = await makeTestApp(t);
  const inv = signedInvoice('example.com/käse', '1.2.3', parcels);
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
  t.equal(res.statusCode, 202, res.body);
  const stored = (TOML.parse(res.body) as unknown as InvoiceCreateReply).invoice;
  const path = `/v1/_i/example.com/${encodeURIComponent('käse')}/1.2.3`;
  res = await ta.app.inject({ url: path });
  t.equal(res.statusCode, 200, 'percent-encoded names work');
  t.equal(res.body, renderInvoice(stored), 'GET serves the stored bytes');
  res = await ta.app.inject({ url: path, headers: { accept: 'application/json' } });
  t.same(JSON.parse(res.body), stored);
  res = await ta.app.inject({ method: 'HEAD', url: path });
  t.equal(res.statusCode, 200);
  t.equal(res.body, '');
  t.equal(Number(res.headers['content-length']), Buffer.byteLength(renderInvoice(stored)));
  res = await ta.app.inject({ method: 'HEAD', url: '/v1/_i/example.com/none/1.0.0' });
  t.equal(res.statusCode, 404, 'HEAD says 404 for a missing invoice');
  res = await ta.app.inject({ url: '/v1/_i/notaversion' });
  t.equal(res.statusCode, 400, 'bad id');
  res = await ta.app.inject({ url: `${path}?bogus=1` });
  t.equal(res.statusCode, 400, 'unknown parameter');

  res = await ta.app.inject({ method: 'DELETE', url: path });
  t.equal(res.statusCode, 200);
  t.equal((TOML.parse(res.body) as { message: string }).message, 'invoice yanked');
  res = await ta.app.inject({ method: 'DELETE', url: path });
  t.equal(res.statusCode, 200, 'yank is idempotent');
  res = await ta.app.inject({ url: path });
  t.equal(res.statusCode, 403);
  res = await ta.app.inject({ method: 'HEAD', url: path });
  t.equal(res.statusCode, 403, 'HEAD says 403 for a yanked invoice');
  res = await ta.app.inject({ url: `${path}?yanked=true` });
  t.equal(res.statusCode, 200);
  const yanked = TOML.parse(res.body) as unknown as Invoice;
  t.equal(yanked.yanked, true);
  t.equal(yanked.yankedSignature?.length, 1, 'one host yank signature');
  t.equal(yanked.yankedSignature?.[0]?.role, 'host');
  res = await ta.app.inject({ url: `/v1/_r/missing/example.com/${encodeURIComponent('käse')}/1.2.3` });
  t.equal(res.statusCode, 403, 'missing of a yanked invoice');
  res = await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/none/1.0.0' });
  t.equal(res.statusCode, 404);
});

t.test('a stored invoice is sent with its ETag and media type in both formats; conditional GET and HEAD', async (t) => {
  const ta = await makeTestApp(t);
  // A small one (sent from a prepared Buffer) and one over PREPARED_BUFFER_UNITS (sent as its
  // string; non-ASCII, so its length in bytes is not its length in characters). A TOML string
  // may have 64 Ki characters at most: the big one has several authors.
  const author = 'grosse Käse '.repeat(3000);
  const invoices = [
    { version: '1.0.0', description: 'small', authors: ['small'] },
    { version: '2.0.0', description: 'big', authors: Array.from({ length: Math.ceil(PREPARED_BUFFER_UNITS / author.length) + 1 }, () => author) },
  ];
  for (const { version, description, authors } of invoices) {
    const inv = signedInvoice('example.com/tagged', version, parcels, { description, authors });
    let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
    t.equal(res.statusCode, 202, res.body);
    const path = `/v1/_i/example.com/tagged/${version}`;
    const tags: string[] = [];
    for (const [accept, contentType] of [['application/toml', 'application/toml'], ['application/json', 'application/json; charset=utf-8']] as const) {
      // Twice: the second reply comes from what the first prepared, and must be the same.
      for (const round of [1, 2]) {
        res = await ta.app.inject({ url: path, headers: { accept } });
        t.equal(res.statusCode, 200, `${version} ${accept} #${round}`);
        t.equal(res.headers['content-type'], contentType, `${version} ${accept} #${round}: the media type of every document reply`);
        t.equal(res.headers.etag, `"${sha256(res.rawPayload)}"`, `${version} ${accept} #${round}: the tag is the sha256 of the bytes sent`);
        t.equal(res.headers.vary, 'accept');
        t.equal(Number(res.headers['content-length']), res.rawPayload.length);
        t.ok(res.body.includes(description) && res.body.includes(authors[0] ?? ''), 'the whole invoice');
      }
      const etag = String(res.headers.etag);
      tags.push(etag);
      const head = await ta.app.inject({ method: 'HEAD', url: path, headers: { accept } });
      t.equal(head.statusCode, 200);
      t.equal(head.body, '');
      t.equal(head.headers.etag, etag, 'HEAD sends the tag GET sends');
      t.equal(head.headers['content-type'], contentType);
      t.equal(Number(head.headers['content-length']), res.rawPayload.length, 'HEAD sends the length GET sends');
      for (const method of ['GET', 'HEAD'] as const) {
        const notModified = await ta.app.inject({ method, url: path, headers: { accept, 'if-none-match': `"other", ${etag}` } });
        t.equal(notModified.statusCode, 304, `${method} ${accept}: If-None-Match with the tag`);
        t.equal(notModified.body, '');
        t.equal(notModified.headers.etag, etag);
        const failed = await ta.app.inject({ method, url: path, headers: { accept, 'if-match': '"other"' } });
        t.equal(failed.statusCode, 412, `${method} ${accept}: If-Match without the tag`);
      }
    }
    t.not(tags[0], tags[1], 'each format has its own tag');
    res = await ta.app.inject({ method: 'DELETE', url: path });
    t.equal(res.statusCode, 200);
    res = await ta.app.inject({ url: `${path}?yanked=true`, headers: { 'if-none-match': tags[0] } });
    t.equal(res.statusCode, 200, 'a yank changes the bytes and so the tag');
    t.not(res.headers.etag, tags[0]);
    t.equal(res.headers.etag, `"${sha256(res.rawPayload)}"`);
  }
});

t.test('the same invoice path answers the same every time, valid or not', async (t) => {
  const ta = await makeTestApp(t);
  const inv = signedInvoice('example.com/again', '1.0.0', parcels);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) })).statusCode, 202);
  for (let round = 1; round <= 3; round++) {
    t.equal((await ta.app.inject({ url: '/v1/_i/example.com/again/1.0.0' })).statusCode, 200, `a valid path, #${round}`);
    const bad = await ta.app.inject({ url: '/v1/_i/example.com/again/not-semver' });
    t.equal(bad.statusCode, 400, `an invalid path, #${round}`);
    t.equal(errorOf(bad.body).code, 'invalid_version');
    const parcel = await ta.app.inject({ url: '/v1/_i/example.com/again/1.0.0@' });
    t.equal(parcel.statusCode, 400, `a parcel path without its sha256, #${round}`);
    t.equal((await ta.app.inject({ url: '/v1/_i/example.com/again/1.0.0?yanked=false' })).statusCode, 200, `a known parameter, #${round}`);
    const unknown = await ta.app.inject({ url: '/v1/_i/example.com/again/1.0.0?yanked=true&bogus=1&other=2' });
    t.equal(unknown.statusCode, 400, `unknown parameters, #${round}`);
    t.same(errorOf(unknown.body), { code: 'invalid_query', error: 'unknown query parameters "bogus", "other" (allowed: yanked)' });
  }
});

t.test("an invoice GET's failures reach the error handler, in the negotiated format, on GET and HEAD", async (t) => {
  // The invoice GET sends its reply from the look-up's reaction, not from an async handler:
  // every way it can fail must still end in one error reply, never a hung or doubled one.
  const ta = await makeTestApp(t);
  let failLookups = false;
  const lookup = ta.index.lookup.bind(ta.index);
  ta.index.lookup = (name, version) => (failLookups ? Promise.reject(new BindleError('unavailable', 'the index is away')) : lookup(name, version));
  const inv = signedInvoice('example.com/fails', '1.0.0', []);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) })).statusCode, 201);
  const path = '/v1/_i/example.com/fails/1.0.0';
  const json = { accept: 'application/json' };
  const expectError = async (what: string, status: number, code: string, url: string, headers: Record<string, string> = {}): Promise<void> => {
    const res = await ta.app.inject({ url, headers: { ...json, ...headers } });
    t.equal(res.statusCode, status, `${what}: ${res.body}`);
    t.match(res.headers['content-type'], /^application\/json/, `${what}: the negotiated format`);
    t.equal((JSON.parse(res.body) as ErrorReply).code, code, `${what}: the code`);
    const head = await ta.app.inject({ method: 'HEAD', url, headers: { ...json, ...headers } });
    t.equal(head.statusCode, status, `${what}: HEAD too`);
    t.equal(head.body, '', `${what}: HEAD sends no body`);
  };
  await expectError('not there', 404, 'not_found', '/v1/_i/example.com/fails/2.0.0');
  await expectError('If-Match of another tag (thrown while the reply is prepared)', 412, 'precondition_failed', path, { 'if-match': '"other"' });
  await expectError('a parcel path with two @ (the id before the last one is invalid)', 400, 'invalid_version', `${path}@x@y`);
  failLookups = true;
  await expectError('the index refusing the look-up', 503, 'unavailable', path);
  failLookups = false;
  t.equal((await ta.app.inject({ method: 'DELETE', url: path })).statusCode, 200, 'yanked');
  await expectError('yanked', 403, 'yanked', path);
  t.equal((await ta.app.inject({ url: `${path}?yanked=true` })).statusCode, 200, 'a yanked invoice on request');
  t.equal((await ta.app.inject({ method: 'DELETE', url: `${path}?hard=true` })).statusCode, 200, 'hard-deleted');
  await expectError('hard-deleted', 410, 'deleted', path);
  await expectError('hard-deleted, also with yanked=true', 410, 'deleted', `${path}?yanked=true`);
});

t.test('a refused invoice GET keeps its connection open, as a found one does', async (t) => {
  // The error handler closes a connection whose request is not read yet; a refusal of what the
  // path or query says must come once Node has read the request, as it did from an async handler.
  const server = await listenTestApp(t);
  const inv = signedInvoice('example.com/kept', '1.0.0', []);
  t.equal((await fetch(`${server.url}_i`, { method: 'POST', headers: TOML_HEADERS, body: renderInvoice(inv) })).status, 201);
  const get = (path: string, last = false): string => `GET /v1/_i/${path} HTTP/1.1\r\nHost: x\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
  const { text } = await rawExchange(Number(new URL(server.url).port), [
    get('example.com/kept/not-semver'),
    get('example.com/kept/1.0.0?bogus=1'),
    get('example.com/kept/2.0.0'),
    get('example.com/kept/1.0.0', true),
  ]);
  const heads = text.split(/(?=HTTP\/1\.1 )/).map((response) => response.slice(0, response.indexOf('\r\n\r\n')));
  t.same(heads.map((head) => Number(head.slice(9, 12))), [400, 400, 404, 200], 'all four answered on one connection');
  for (const [i, head] of heads.slice(0, 3).entries()) {
    t.notMatch(head, /^connection: close/im, `refusal ${i + 1} does not close the connection`);
    t.match(head, /^connection: keep-alive/im, `refusal ${i + 1} keeps it alive`);
  }
});

t.test('parcel routes', async (t) => {
  const ta = await makeTestApp(t, { maxParcelBytes: 1 << 20 });
  const big = Buffer.alloc(300_000, 7);
  const inv = signedInvoice('example.com/parcels', '1.0.0', [...parcels, { name: 'big.bin', data: big, mediaType: 'application/octet-stream' }]);
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
  t.equal(res.statusCode, 202, res.body);
  const base = '/v1/_i/example.com/parcels/1.0.0';
  const a = sha256('alpha');
  const bigSha = sha256(big);

  res = await ta.app.inject({ method: 'POST', url: `${base}@${sha256('nope')}`, payload: 'nope' });
  t.equal(res.statusCode, 400, 'not on invoice');
  t.equal(errorOf(res.body).code, 'parcel_not_on_invoice');
  res = await ta.app.inject({ method: 'POST', url: `${base}@${a}`, payload: 'alph' });
  t.equal(res.statusCode, 400, 'wrong size');
  t.equal(errorOf(res.body).code, 'size_mismatch');
  res = await ta.app.inject({ method: 'POST', url: `${base}@${a}`, payload: 'alphx' });
  t.equal(res.statusCode, 400, 'wrong digest');
  t.equal(errorOf(res.body).code, 'digest_mismatch');
  res = await ta.app.inject({ method: 'POST', url: `${base}@${a}`, payload: 'alpha' });
  t.equal(res.statusCode, 200, 'retry after failed uploads succeeds');
  t.equal((TOML.parse(res.body) as { message: string }).message, 'parcel created');
  res = await ta.app.inject({ method: 'POST', url: `${base}@${a}`, payload: 'alpha' });
  t.equal(res.statusCode, 409, 'existing parcel');
  res = await ta.app.inject({ method: 'POST', url: `${base}@nothex`, payload: 'alpha' });
  t.equal(res.statusCode, 400, 'bad parcel id');

  res = await ta.app.inject({ method: 'POST', url: `${base}@${bigSha}`, payload: big });
  t.equal(res.statusCode, 200, res.body);
  res = await ta.app.inject({ url: `${base}@${bigSha}` });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'application/octet-stream');
  t.equal(res.headers.etag, `"${bigSha}"`);
  t.equal(Number(res.headers['content-length']), big.length);
  t.ok(res.rawPayload.equals(big));
  res = await ta.app.inject({ method: 'HEAD', url: `${base}@${bigSha}` });
  t.equal(res.statusCode, 200);
  t.equal(Number(res.headers['content-length']), big.length);
  t.equal(res.rawPayload.length, 0);
  res = await ta.app.inject({ url: `${base}@${bigSha}`, headers: { range: 'bytes=10-19' } });
  t.equal(res.statusCode, 206);
  t.equal(res.headers['content-range'], `bytes 10-19/${big.length}`);
  t.ok(res.rawPayload.equals(big.subarray(10, 20)));
  res = await ta.app.inject({ url: `${base}@${bigSha}`, headers: { range: 'bytes=-5' } });
  t.equal(res.statusCode, 206);
  t.ok(res.rawPayload.equals(big.subarray(big.length - 5)));
  res = await ta.app.inject({ url: `${base}@${bigSha}`, headers: { range: `bytes=${big.length}-` } });
  t.equal(res.statusCode, 416);
  t.equal(res.headers['content-range'], `bytes */${big.length}`);
  res = await ta.app.inject({ url: `${base}@${bigSha}`, headers: { 'if-none-match': `"${bigSha}"` } });
  t.equal(res.statusCode, 304);

  res = await ta.app.inject({ url: `${base}@${sha256('bravo')}` });
  t.equal(res.statusCode, 404, 'listed but not uploaded');
  res = await ta.app.inject({ method: 'HEAD', url: `${base}@${sha256('bravo')}` });
  t.equal(res.statusCode, 404);
  res = await ta.app.inject({ url: `${base}@${sha256('nope')}` });
  t.equal(res.statusCode, 404, 'not on the invoice');

  res = await ta.app.inject({ url: '/v1/_r/missing/example.com/parcels/1.0.0' });
  t.same((TOML.parse(res.body) as unknown as { missing: Array<{ name: string }> }).missing.map((l) => l.name), ['b.txt']);

  res = await ta.app.inject({ method: 'DELETE', url: base });
  t.equal(res.statusCode, 200);
  res = await ta.app.inject({ url: `${base}@${a}` });
  t.equal(res.statusCode, 403, 'parcel of a yanked invoice');
  res = await ta.app.inject({ url: `${base}@${a}?yanked=true` });
  t.equal(res.statusCode, 200);
  res = await ta.app.inject({ method: 'POST', url: `${base}@${sha256('bravo')}`, payload: 'bravo' });
  t.equal(res.statusCode, 403, 'upload to a yanked invoice');
});

t.test('parcel over the size limit → 413', async (t) => {
  const ta = await makeTestApp(t, { maxParcelBytes: 1000 });
  const data = Buffer.alloc(2000, 1);
  const inv = signedInvoice('example.com/limit', '1.0.0', [{ name: 'big', data }]);
  await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
  const res = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/limit/1.0.0@${sha256(data)}`, payload: data });
  t.equal(res.statusCode, 413);
  t.equal(errorOf(res.body).code, 'payload_too_large');
});

t.test('32 concurrent uploads of one parcel leave one intact parcel', async (t) => {
  const ta = await makeTestApp(t);
  const data = Buffer.alloc(256 * 1024, 3);
  const inv = signedInvoice('example.com/race', '1.0.0', [{ name: 'race', data }]);
  await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
  const url = `/v1/_i/example.com/race/1.0.0@${sha256(data)}`;
  const results = await Promise.all(Array.from({ length: 32 }, () => ta.app.inject({ method: 'POST', url, payload: data })));
  const statuses = results.map((r) => r.statusCode);
  t.equal(statuses.filter((s) => s === 200).length, 1, `exactly one created: ${statuses.join(',')}`);
  t.ok(statuses.every((s) => s === 200 || s === 409), 'every reply is 200 or 409');
  const res = await ta.app.inject({ url });
  t.ok(res.rawPayload.equals(data), 'the stored parcel is intact');
});

t.test('names must be NFC and single-script: 400 invalid_name at create and in paths', async (t) => {
  const ta = await makeTestApp(t);
  const nfc = signedInvoice('example.com/k\u00e4se', '1.0.0', []);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(nfc) })).statusCode, 201);
  for (const [name, why] of [['example.com/ka\u0308se', /NFC/], ['example.com/\u0430pple', /mixes scripts/], ['example.com/\u0301x', /combining mark/]] as const) {
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(signedInvoice(name, '1.0.0', [])) });
    t.equal(res.statusCode, 400, name.normalize('NFC') === name ? name : 'NFD name');
    t.equal(errorOf(res.body).code, 'invalid_name');
    t.match(errorOf(res.body).error, why);
    const get = await ta.app.inject({ url: `/v1/_i/${encodeURIComponent(name).replace('%2F', '/')}/1.0.0` });
    t.equal(get.statusCode, 400, 'a GET of that spelling is refused too, not a second bindle');
    t.equal(errorOf(get.body).code, 'invalid_name');
  }
});

t.test('an empty parcel, and empty bodies, sent without a Content-Type: no body stream is not a 500', async (t) => {
  const ta = await makeTestApp(t);
  const empty = Buffer.alloc(0);
  const created = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(signedInvoice('example.com/empty', '1.0.0', [{ name: 'empty', data: empty }])),
  });
  t.equal(created.statusCode, 202, created.body);
  // Fastify hands a route no body at all for an empty one without a Content-Type (this was a 500).
  const put = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/empty/1.0.0@${sha256(empty)}`, payload: empty });
  t.equal(put.statusCode, 200, put.body);
  t.equal((await ta.app.inject({ url: `/v1/_i/example.com/empty/1.0.0@${sha256(empty)}` })).statusCode, 200, 'and it is served');
  const invoice = await ta.app.inject({ method: 'POST', url: '/v1/_i', payload: empty });
  t.equal(invoice.statusCode, 400, invoice.body);
  t.equal(errorOf(invoice.body).code, 'malformed_body');
  const batch = await ta.app.inject({ method: 'POST', url: '/v1/_i/example.com/empty/1.0.0', headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: empty });
  t.equal(batch.statusCode, 400, batch.body);
  t.equal(errorOf(batch.body).code, 'malformed_body');
});

t.test('a label must give a parcel its stored size, and one size throughout the invoice', async (t) => {
  const ta = await makeTestApp(t);
  const post = (inv: Invoice) => ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
  const alpha = parcels[0] ?? { name: 'a.txt', data: Buffer.from('alpha') };
  const sha = sha256(alpha.data);
  let res = await post(signedInvoice('example.com/sizes', '1.0.0', [alpha]));
  t.equal(res.statusCode, 202, res.body);
  res = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/sizes/1.0.0@${sha}`, payload: alpha.data });
  t.equal(res.statusCode, 200, res.body);

  const relabelled = (version: string, sizes: readonly number[]): Invoice =>
    signedInvoice('example.com/sizes', version, [], {
      extra: { parcel: sizes.map((size, i) => ({ label: { sha256: sha, mediaType: 'text/plain', name: `a${i}.txt`, size } })) },
    });
  res = await post(relabelled('2.0.0', [alpha.data.length + 1]));
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'size_mismatch');
  t.match(errorOf(res.body).error, `parcel ${sha} is stored with ${alpha.data.length} bytes`);
  res = await ta.app.inject({ url: '/v1/_i/example.com/sizes/2.0.0' });
  t.equal(res.statusCode, 404, 'the refused invoice was not stored');

  res = await post(relabelled('3.0.0', [alpha.data.length, alpha.data.length + 1]));
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'invalid_invoice', 'two labels giving one parcel two sizes');
  t.match(errorOf(res.body).error, 'parcel[1].label.size');

  res = await post(relabelled('4.0.0', [alpha.data.length, alpha.data.length]));
  t.equal(res.statusCode, 201, `the stored size, twice, nothing missing: ${res.body}`);
  t.same((TOML.parse(res.body) as unknown as InvoiceCreateReply).missing ?? [], [], 'nothing missing');
});

t.test('a label must give a parcel not stored yet the size other invoices list it with (decided by the index)', async (t) => {
  const ta = await makeTestApp(t);
  const post = (inv: Invoice) => ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(inv) });
  const data = Buffer.from('six b!');
  const sha = sha256(data);
  const labelled = (name: string, size: number): Invoice =>
    signedInvoice(name, '1.0.0', [], { extra: { parcel: [{ label: { sha256: sha, mediaType: 'text/plain', name: 'p.txt', size } }] } });
  let res = await post(labelled('example.com/m', data.length + 1));
  t.equal(res.statusCode, 202, `the parcel is missing: ${res.body}`);
  res = await post(labelled('example.com/n', data.length));
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'size_mismatch');
  t.match(errorOf(res.body).error, `gives parcel ${sha} ${data.length} bytes, but invoice example.com/m/1.0.0 lists it with ${data.length + 1} bytes`);
  res = await ta.app.inject({ url: '/v1/_i/example.com/n/1.0.0' });
  t.equal(res.statusCode, 404, 'the refused invoice was not stored');
  res = await post(labelled('example.com/o', data.length + 1));
  t.equal(res.statusCode, 202, `the size the stored invoice lists: ${res.body}`);
});
