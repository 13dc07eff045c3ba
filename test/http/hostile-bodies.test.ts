/**
 * Issue 11 item 5 (body parsing): hostile invoice bodies neither stall other requests nor get
 * past the structure bounds; large bodies parse on a worker thread with the same results and
 * errors as small ones parsed inline.
 */
import t from 'tap';
import TOML from '@iarna/toml';
import { MAX_LISTED_ISSUES, type ErrorReply, type InvoiceCreateReply } from '../../schema/index.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MAX_ENTRIES, MAX_NESTING, MAX_STRING_LENGTH, decodeDocument, nestingDepth, parseSyntax, scanStructure,
} from '../../core/codec/document-codec.js';
import { INLINE_PARSE_BYTES, MAX_PARCELS, parseInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice } from '../helpers/bindles.js';
import { OWN_VECTORS, REFERENCE_FIXTURES } from '../helpers/paths.js';
import { makeTestApp } from '../helpers/test-app.js';

const TOML_HEADERS = { 'content-type': 'application/toml' };

function errorOf(body: string): ErrorReply {
  return TOML.parse(body) as unknown as ErrorReply;
}

function nested(depth: number): string {
  return `a = ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
}

t.test('nestingDepth skips strings and comments and stops past the limit', async (t) => {
  t.equal(nestingDepth('a = [[1, 2], [3]]\n[t]\nb = { c = [1] }\n', 100), 2);
  t.equal(nestingDepth('a = "[[[[" # [[[[\nb = \'{{{\'\nc = """ [[[ \\" ]]] """\nd = \'\'\'[[[\'\'\'\n', 100), 0);
  t.equal(nestingDepth('{"a": [[["x\\"]]]"]]]}', 100), 4);
  t.equal(nestingDepth(nested(100_000), 64), 65, 'stops as soon as the limit is passed');
  t.throws(() => parseSyntax(nested(MAX_NESTING + 1), 'toml', { bounded: true }), { code: 'malformed_body', message: /nested deeper than 64/ });
  t.same(parseSyntax(nested(3), 'toml', { bounded: true }), { a: [[[]]] });
  t.doesNotThrow(() => parseSyntax(nested(MAX_NESTING + 1), 'toml'), 'files (not bodies) are not bounded');
});

t.test('a 977 KiB body of nested arrays is refused with 400, as TOML and as JSON', async (t) => {
  const ta = await makeTestApp(t);
  const depth = Math.floor((977 * 1024 - 10) / 2);
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: nested(depth) });
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'malformed_body');
  t.match(errorOf(res.body).error, /nested deeper than 64 levels/);
  res = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/json' }, payload: `{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`,
  });
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'malformed_body');
});

t.test('a large invoice parses on a worker thread with the same reply', async (t) => {
  const ta = await makeTestApp(t);
  const parcels = Array.from({ length: 700 }, (_, i) => ({ name: `file-${i}.txt`, data: Buffer.from(`parcel ${i}`) }));
  const text = renderInvoice(signedInvoice('example.com/large', '1.0.0', parcels));
  t.ok(text.length > INLINE_PARSE_BYTES, 'the body is over the inline limit');
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { ...TOML_HEADERS, accept: 'application/json' }, payload: text });
  t.equal(res.statusCode, 202, res.body);
  t.equal((JSON.parse(res.body) as InvoiceCreateReply).missing?.length, 700);
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: `${text}\nsurprise = 1\n` });
  t.equal(res.statusCode, 400);
  t.equal(errorOf(res.body).code, 'invalid_invoice');
  t.match(errorOf(res.body).error, /surprise: unknown field/, 'the worker reports the codec error as is');
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: `${text}\n[bindle\n` });
  t.equal(res.statusCode, 400);
  t.equal(errorOf(res.body).code, 'malformed_body');
});

t.test('while a 100k-key body is parsed, /healthz is answered first', async (t) => {
  const ta = await makeTestApp(t, { maxInvoiceBytes: 2 << 20 });
  let body = '';
  for (let i = 0; i < 100_000; i++) body += `k${i} = ${i}\n`;
  const order: string[] = [];
  const post = ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: body }).then((res) => {
    order.push('post');
    return res;
  });
  // Let the body be read and its parse begin (an inline parse would hold up these turns too).
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  const health = await ta.app.inject({ method: 'GET', url: '/healthz' });
  order.push('healthz');
  t.equal(health.statusCode, 200);
  const res = await post;
  t.equal(res.statusCode, 400, 'the body is refused');
  t.equal(errorOf(res.body).code, 'invalid_invoice');
  t.same(order, ['healthz', 'post'], '/healthz did not wait for the parse');
});

/** Every file named …invoice.toml under `dir`, recursively. */
function invoiceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /invoice\.toml$/.test(f))
    .map((f) => join(dir, f));
}

/** An unsigned invoice listing `count` parcels (all the same label: only the count matters here). */
function invoiceWithParcels(count: number): string {
  const parcel = `[[parcel]]\n[parcel.label]\nsha256 = "${'a'.repeat(64)}"\nmediaType = "text/plain"\nname = "f"\nsize = 1\n`;
  return `bindleVersion = "1.0.0"\n[bindle]\nname = "example.com/many"\nversion = "1.0.0"\n${parcel.repeat(count)}`;
}

t.test('scanStructure counts keys, array items and string lengths outside strings and comments', async (t) => {
  t.same(scanStructure('a = [1, 2, 3]\nb = { c = "x,y=z", d = 1 } # e = 1, 2\n'), { depth: 1, entries: 6, longestString: 5 });
  t.same(scanStructure('{"a": [1, 2], "b": {"c": "long string"}}'), { depth: 2, entries: 4, longestString: 11 });
  t.same(scanStructure('a = \'\'\'\nabc\'\'\'\n'), { depth: 0, entries: 1, longestString: 4 });
  t.equal(scanStructure('a = 1\n'.repeat(1000), { depth: 64, entries: 10, stringLength: 100 }).entries, 11, 'stops past the limit');
});

t.test('every real invoice fits the structure bounds easily', async (t) => {
  const files = [...invoiceFiles(OWN_VECTORS), ...(REFERENCE_FIXTURES === undefined ? [] : invoiceFiles(REFERENCE_FIXTURES))];
  t.ok(files.length >= 6, `found ${files.length} invoices`);
  for (const file of files) {
    const scan = scanStructure(readFileSync(file, 'utf8'));
    t.ok(scan.depth <= 4 && scan.entries < MAX_ENTRIES / 10 && scan.longestString < MAX_STRING_LENGTH / 10, `${file}: ${JSON.stringify(scan)}`);
  }
});

t.test('too many keys and array items, a too-long string or too many parcels: 413 naming the limit', async (t) => {
  const ta = await makeTestApp(t, { maxInvoiceBytes: 4 << 20 });
  const post = async (payload: string): Promise<ErrorReply> => {
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload });
    t.equal(res.statusCode, 413, res.body.slice(0, 200));
    return errorOf(res.body);
  };
  let err = await post(`a = [${'1,'.repeat(MAX_ENTRIES + 1)}1]\n`);
  t.equal(err.code, 'payload_too_large');
  t.match(err.error, `limit of ${MAX_ENTRIES} keys and array items`);
  err = await post(`${Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => `k${i}=1`).join('\n')}\n`);
  t.match(err.error, `limit of ${MAX_ENTRIES} keys`);
  err = await post(`bindleVersion = "1.0.0"\n[bindle]\nname = "example.com/long"\nversion = "1.0.0"\ndescription = "${'x'.repeat(MAX_STRING_LENGTH + 1)}"\n`);
  t.equal(err.code, 'payload_too_large');
  t.match(err.error, `string longer than this server's limit of ${MAX_STRING_LENGTH} characters`);
  err = await post(invoiceWithParcels(MAX_PARCELS + 1));
  t.equal(err.code, 'payload_too_large');
  t.match(err.error, `${MAX_PARCELS + 1} parcels: more than this server's limit of ${MAX_PARCELS}`);
});

t.test('the bounds apply to request bodies only, and an invoice at the parcel limit is accepted', async (t) => {
  const text = `a = "${'x'.repeat(MAX_STRING_LENGTH + 1)}"\n`;
  t.throws(() => parseSyntax(text, 'toml', { bounded: true }), { code: 'payload_too_large' });
  t.doesNotThrow(() => parseSyntax(text, 'toml'));
  t.equal(parseInvoice(invoiceWithParcels(MAX_PARCELS), 'toml', 'body').parcel?.length, MAX_PARCELS);
});

t.test('an invoice with thousands of problems gets an error body of bounded size naming the first ones and the count', async (t) => {
  const ta = await makeTestApp(t);
  const keys = 60_000;
  const payload = Array.from({ length: keys }, (_, i) => `k${i} = 1`).join('\n');
  const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload });
  t.equal(res.statusCode, 400);
  t.ok(res.body.length < 4096, `the error body is ${res.body.length} bytes, not a copy of every problem`);
  const error = errorOf(res.body);
  t.equal(error.code, 'invalid_invoice');
  t.match(error.error, /bindleVersion: missing required field/, 'the first problems are named');
  t.match(error.error, /k0: unknown field/);
  t.match(error.error, new RegExp(`and ${keys + 2 - MAX_LISTED_ISSUES} more problems`), 'the rest are counted');
});

t.test('a body with a Content-Encoding is refused with 415 instead of being parsed or stored as it is', async (t) => {
  const ta = await makeTestApp(t);
  const toml = renderInvoice(signedInvoice('example.com/encoded', '1.0.0', []));
  for (const encoding of ['gzip', 'br', 'deflate, gzip']) {
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { ...TOML_HEADERS, 'content-encoding': encoding }, payload: toml });
    t.equal(res.statusCode, 415, `${encoding}: ${res.body}`);
    t.equal(errorOf(res.body).code, 'unsupported_media_type');
    t.match(errorOf(res.body).error, /Content-Encoding/);
  }
  const oci = await ta.app.inject({ method: 'POST', url: `/v2/example.com/encoded/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, headers: { 'content-encoding': 'gzip' }, payload: 'x' });
  t.equal(oci.statusCode, 415, 'over /v2 too');
  t.equal((JSON.parse(oci.body) as { errors: Array<{ detail: { code: string } }> }).errors[0]?.detail.code, 'unsupported_media_type');
  const identity = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { ...TOML_HEADERS, 'content-encoding': 'identity' }, payload: toml });
  t.equal(identity.statusCode, 201, `identity is no encoding: ${identity.body}`);
});

t.test('bodies that are not Unicode text: bytes that are not UTF-8, and lone surrogates written as escapes, are 400', async (t) => {
  t.equal(decodeDocument(Buffer.from('\ufeffa = 1', 'utf8'), 'toml'), 'a = 1', 'a leading byte-order mark is dropped');
  for (const bytes of ['ff fe', 'c0 af', 'ed a0 80', 'e2 82']) {
    t.throws(() => decodeDocument(Buffer.from(`61 3d 22 ${bytes} 22`.replaceAll(' ', ''), 'hex'), 'toml'), { code: 'malformed_body', message: /not valid UTF-8/ }, bytes);
  }
  t.throws(() => parseSyntax('{"a": "\\ud800"}', 'json'), { code: 'malformed_body', message: /\\ud800/ });
  t.throws(() => parseSyntax('{"\\udc00": 1}', 'json'), { code: 'malformed_body', message: /\\udc00/ }, 'in a key');
  t.throws(() => parseSyntax('{"a": [{"b": "x\\udbff"}]}', 'json'), { code: 'malformed_body' }, 'deep in the document');
  t.same(parseSyntax('{"a": "\\ud83d\\ude00"}', 'json'), { a: '\u{1F600}' }, 'a surrogate pair is a character');
  t.throws(() => parseSyntax('a = "\\uD800"', 'toml'), { code: 'malformed_body' }, 'TOML escapes too');

  const ta = await makeTestApp(t);
  const invoice = signedInvoice('example.com/text', '1.0.0', [{ name: 'a.txt', data: Buffer.from('a') }]);
  const toml = renderInvoice({ ...invoice, bindle: { ...invoice.bindle, description: 'AB' } });
  const notUtf8 = Buffer.from(toml.replace('"AB"', '"A\u00ffB"'), 'latin1');
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: notUtf8 });
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'malformed_body');
  t.match(errorOf(res.body).error, /not valid UTF-8/);
  const json = JSON.stringify({ ...invoice, annotations: { x: 'y' } }).replace('"x"', '"\\ud800"');
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/json' }, payload: json });
  t.equal(res.statusCode, 400, res.body);
  t.equal(errorOf(res.body).code, 'malformed_body');
  t.equal((await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/text/1.0.0' })).statusCode, 404, 'nothing stored');
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(renderInvoice(invoice))]) });
  t.equal(res.statusCode, 202, `a body with a byte-order mark is taken: ${res.body}`);
});
