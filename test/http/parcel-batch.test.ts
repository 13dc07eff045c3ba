/**
 * POST /_i/{name}/{version} with a multipart/form-data body of parcels
 * (server/http/parcel-batch.ts, server/routes/invoice-routes.ts): each part is stored as its
 * single upload would be, parts the server has are reported as existing, and every bad part
 * fails the request with a clear 4xx naming it, leaving the parts before it stored and nothing of
 * it visible. Bodies are encoded by Node's own FormData (undici), not by our client.
 */
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply, ParcelBatchReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { MAX_BATCH_PARTS, partMemory } from '../../server/http/parcel-batch.js';
import { AnonymousGetAuthorizer, HtpasswdAuthenticator } from '../../server/auth/index.js';
import { schemaIssues } from '../../schema/index.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { recordingLogger } from '../helpers/log-records.js';
import { listenForRawClients, makeTestApp, type TestApp } from '../helpers/test-app.js';

const NAME = 'example.com/batch';
const INVOICE = `/v1/_i/${NAME}/1.0.0`;
const parcels: TestParcel[] = [
  { name: 'a.txt', data: Buffer.from('alpha') },
  { name: 'b.txt', data: Buffer.from('bravo bravo') },
  { name: 'c.bin', data: Buffer.alloc(70_000, 7) },
  { name: 'empty', data: Buffer.alloc(0) },
];
const [a, b, c, empty] = parcels.map((p) => ({ ...p, sha: sha256(p.data) })) as [
  TestParcel & { sha: string }, TestParcel & { sha: string }, TestParcel & { sha: string }, TestParcel & { sha: string },
];

/** A multipart body of `parts` ([part name, bytes]) as Node's FormData encodes it, with its Content-Type. */
async function multipart(parts: ReadonlyArray<readonly [string, Buffer]>): Promise<{ payload: Buffer; contentType: string }> {
  const form = new FormData();
  for (const [name, data] of parts) form.append(name, new Blob([data]), `${name.slice(0, 8)}.dat`);
  const encoded = new Response(form);
  return { payload: Buffer.from(await encoded.arrayBuffer()), contentType: encoded.headers.get('content-type') ?? '' };
}

async function withInvoice(t: Test, version = '1.0.0'): Promise<TestApp> {
  const ta = await makeTestApp(t);
  const res = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(signedInvoice(NAME, version, parcels)),
  });
  t.equal(res.statusCode, 202, res.body);
  return ta;
}

async function postBatch(ta: TestApp, parts: ReadonlyArray<readonly [string, Buffer]>, headers: Record<string, string> = {}) {
  const { payload, contentType } = await multipart(parts);
  return ta.app.inject({ method: 'POST', url: INVOICE, headers: { 'content-type': contentType, ...headers }, payload });
}

function errorOf(body: string): ErrorReply {
  return TOML.parse(body) as unknown as ErrorReply;
}

t.test('a batch stores every part; parts the server has are reported as existing', async (t) => {
  const ta = await withInvoice(t);
  const first = await postBatch(ta, [[a.sha, a.data], [c.sha, c.data], [empty.sha, empty.data]], { accept: 'application/json' });
  t.equal(first.statusCode, 200, first.body);
  t.match(first.headers['content-type'], /^application\/json/);
  const reply = JSON.parse(first.body) as ParcelBatchReply;
  t.same(schemaIssues('ParcelBatchReply', reply), [], 'the reply follows schema/parcel-batch-reply.schema.json');
  t.same(reply, { created: [a.sha, c.sha, empty.sha], existing: [] }, 'created, in the order of the parts');
  for (const p of [a, c, empty]) {
    const got = await ta.app.inject({ url: `${INVOICE}@${p.sha}` });
    t.equal(got.statusCode, 200, `${p.name} is served`);
    t.ok(got.rawPayload.equals(p.data), `${p.name}: the same bytes`);
  }

  const second = await postBatch(ta, [[a.sha, a.data], [b.sha, b.data], [b.sha, b.data]]);
  t.equal(second.statusCode, 200, second.body);
  t.match(second.headers['content-type'], /^application\/toml/, 'TOML by default');
  t.same(TOML.parse(second.body), { created: [b.sha], existing: [a.sha, b.sha] }, 'one already stored, one new, the same one twice');
  const missing = await ta.app.inject({ url: `/v1/_r/missing/${NAME}/1.0.0`, headers: { accept: 'application/json' } });
  t.same(JSON.parse(missing.body), { missing: [] }, 'nothing is missing any more');
});

t.test('a part without a filename is a parcel too (curl -F sha=<file)', async (t) => {
  const ta = await withInvoice(t);
  const boundary = 'x-boundary-1';
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${a.sha}"\r\n\r\n`),
    a.data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const res = await ta.app.inject({ method: 'POST', url: INVOICE, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, payload });
  t.equal(res.statusCode, 200, res.body);
  t.same(TOML.parse(res.body), { created: [a.sha], existing: [] });
});

t.test('a bad part fails the request naming it and saying how many parts are stored; nothing of it is stored', async (t) => {
  const cases: Array<{ what: string; bad: readonly [string, Buffer]; status: number; code: string; message: RegExp }> = [
    { what: 'a name that is not a sha256', bad: ['c.bin', c.data], status: 400, code: 'bad_request', message: /^part 2: it is named "c\.bin": name each part by its parcel's sha256/ },
    { what: 'a parcel not on the invoice', bad: [sha256('other'), Buffer.from('other')], status: 400, code: 'parcel_not_on_invoice', message: /^part 2: parcel [0-9a-f]{64} is not listed/ },
    { what: 'bytes that do not match the digest', bad: [c.sha, Buffer.alloc(70_000, 8)], status: 400, code: 'digest_mismatch', message: /^part 2: / },
    { what: 'fewer bytes than the label says', bad: [c.sha, c.data.subarray(1)], status: 400, code: 'size_mismatch', message: /^part 2: / },
    { what: 'more bytes than the label says', bad: [c.sha, Buffer.concat([c.data, Buffer.from('!')])], status: 400, code: 'size_mismatch', message: /^part 2: / },
    { what: 'a small part with the wrong bytes', bad: [b.sha, Buffer.from('BRAVO BRAVO')], status: 400, code: 'digest_mismatch', message: /^part 2: / },
  ];
  for (const k of cases) {
    const ta = await withInvoice(t);
    const res = await postBatch(ta, [[a.sha, a.data], k.bad, [empty.sha, empty.data]]);
    t.equal(res.statusCode, k.status, `${k.what}: ${res.body}`);
    const error = errorOf(res.body);
    t.equal(error.code, k.code, k.what);
    t.match(error.error, k.message, `${k.what}: the message names the part`);
    t.ok(await ta.parcels.has(a.sha), `${k.what}: the part before it is stored`);
    const named = /^[0-9a-f]{64}$/.test(k.bad[0]) ? k.bad[0] : sha256(k.bad[1]);
    t.notOk(await ta.parcels.has(named), `${k.what}: nothing of the bad part is stored`);
    // A small part after it may have been stored side by side with it; the message says how many are.
    const stored = (await ta.parcels.has(empty.sha)) ? 2 : 1;
    t.match(error.error, new RegExp(`\\(${stored} other part\\(s\\) of this request are stored\\)$`), `${k.what}: the count of parts stored is right`);
  }
});

t.test('a large bad part is streamed after the parts before it are stored; the parts after it are not read', async (t) => {
  const ta = await withInvoice(t);
  const res = await postBatch(ta, [[a.sha, a.data], [b.sha, b.data], [c.sha, Buffer.alloc(70_000, 9)], [empty.sha, empty.data]]);
  t.equal(res.statusCode, 400, res.body);
  t.match(errorOf(res.body), { code: 'digest_mismatch', error: /^part 3: .*\(2 other part\(s\) of this request are stored\)$/ });
  t.ok((await ta.parcels.has(a.sha)) && (await ta.parcels.has(b.sha)), 'the two before it are stored');
  t.notOk(await ta.parcels.has(empty.sha), 'the one after it is not');
});

t.test('what is not a batch of parcels is refused with a 4xx and a body', async (t) => {
  const ta = await withInvoice(t);
  const post = (headers: Record<string, string>, payload: string | Buffer) => ta.app.inject({ method: 'POST', url: INVOICE, headers, payload });

  const toml = await post({ 'content-type': 'application/toml' }, renderInvoice(signedInvoice(NAME, '1.0.0', parcels)));
  t.equal(toml.statusCode, 415, toml.body);
  t.equal(errorOf(toml.body).code, 'unsupported_media_type');
  t.match(errorOf(toml.body).error, /as multipart\/form-data, one part per parcel named by its sha256; or one parcel to \/_i\/\{name\}\/\{version\}@\{sha256\}, or an invoice to \/_i/);

  const noBoundary = await post({ 'content-type': 'multipart/form-data' }, 'whatever');
  t.equal(noBoundary.statusCode, 400, noBoundary.body);
  t.equal(errorOf(noBoundary.body).code, 'malformed_body');
  t.match(errorOf(noBoundary.body).error, /^the multipart body cannot be read: /);

  const none = await post({ 'content-type': 'multipart/form-data; boundary=zz' }, '--zz--\r\n');
  t.equal(none.statusCode, 400, none.body);
  t.match(errorOf(none.body), { code: 'malformed_body', error: /has no parts/ });

  const cut = await post(
    { 'content-type': 'multipart/form-data; boundary=zz' },
    Buffer.concat([Buffer.from(`--zz\r\nContent-Disposition: form-data; name="${c.sha}"; filename="c"\r\n\r\n`), c.data.subarray(0, 100)]),
  );
  t.equal(cut.statusCode, 400, `a body that ends inside a part: ${cut.body}`);
  t.notOk(await ta.parcels.has(c.sha), 'nothing of it is stored');

  const body = await multipart([[a.sha, a.data]]);
  const unknown = await ta.app.inject({ method: 'POST', url: `/v1/_i/${NAME}/9.9.9`, headers: { 'content-type': body.contentType }, payload: body.payload });
  t.equal(unknown.statusCode, 404, `an invoice that does not exist: ${unknown.body}`);
});

t.test(`more than ${MAX_BATCH_PARTS} parts: 413`, async (t) => {
  const ta = await withInvoice(t);
  const parts = Array.from({ length: MAX_BATCH_PARTS + 1 }, () => [empty.sha, empty.data] as const);
  const res = await postBatch(ta, parts);
  t.equal(res.statusCode, 413, res.body);
  t.match(errorOf(res.body), { code: 'payload_too_large', error: new RegExp(`more than ${MAX_BATCH_PARTS} parts`) });
});

t.test('a yanked invoice takes no parcels; writes need a principal when auth is on', async (t) => {
  const ta = await withInvoice(t);
  t.equal((await ta.app.inject({ method: 'DELETE', url: INVOICE })).statusCode, 200);
  const yanked = await postBatch(ta, [[a.sha, a.data]]);
  t.equal(yanked.statusCode, 403, yanked.body);
  t.equal(errorOf(yanked.body).code, 'yanked');

  const authed = await makeTestApp(t, { authenticator: await HtpasswdAuthenticator.parse('', 'test'), authorizer: new AnonymousGetAuthorizer() });
  const anonymous = await postBatch(authed, [[a.sha, a.data]]);
  t.equal(anonymous.statusCode, 403, anonymous.body);
  t.match(errorOf(anonymous.body), { code: 'forbidden', error: /anonymous writes are not allowed/ });
});

t.test('a client gone mid-part leaves nothing of it stored', async (t) => {
  const ta = await withInvoice(t);
  const port = await listenForRawClients(t, ta);
  const head = Buffer.from(`--zz\r\nContent-Disposition: form-data; name="${c.sha}"; filename="c"\r\n\r\n`);
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(
    `POST ${INVOICE} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: ${head.length + c.data.length + 10}\r\n\r\n`,
  );
  socket.write(Buffer.concat([head, c.data.subarray(0, 30_000)]));
  await new Promise((resolve) => setTimeout(resolve, 200));
  socket.destroy();
  t.notOk(await ta.parcels.has(c.sha), 'not stored');
  // Nothing left behind stands in the way: sending it again stores it.
  const retry = await postBatch(ta, [[c.sha, c.data]]);
  t.same(TOML.parse(retry.body), { created: [c.sha], existing: [] }, 'sent again, it is stored');
  t.ok(await ta.parcels.has(c.sha));
  t.equal(partMemory.held, 0, 'the memory the cut request held is given back');
});

t.test('a batch is audited as an upload of the bindle, whether it succeeds or fails', async (t) => {
  const { logger, records } = recordingLogger();
  const ta = await makeTestApp(t, { logger });
  const created = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(signedInvoice(NAME, '1.0.0', parcels)),
  });
  t.equal(created.statusCode, 202);
  t.equal((await postBatch(ta, [[a.sha, a.data]])).statusCode, 200);
  t.equal((await postBatch(ta, [[b.sha, a.data]])).statusCode, 400);
  const audits = records.filter((r) => r.audit === true).map(({ action, bindle, parcel, outcome, status }) => ({ action, bindle, parcel, outcome, status }));
  t.same(audits, [
    { action: 'create', bindle: `${NAME}/1.0.0`, parcel: null, outcome: 'success', status: 202 },
    { action: 'upload', bindle: `${NAME}/1.0.0`, parcel: null, outcome: 'success', status: 200 },
    { action: 'upload', bindle: `${NAME}/1.0.0`, parcel: null, outcome: 'failed', status: 400 },
  ]);
});
