/**
 * OCI blob links (server/storage/oci-blob-links.ts): a blob uploaded to a repository (monolithic
 * POST, a session's closing PUT) or mounted into it is served there at once, before any manifest
 * names it (distribution-spec: fetchable at its Location), and by another replica on the same
 * storage; a failed upload links nothing; a mount succeeds only from a repository that has the
 * blob and that the requester may pull, else it opens an upload session; a hard delete unlinks.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';
import { SecretReads, ociError, pushThroughV1 } from '../helpers/oci.js';

const NAME = 'example.com/links/app';
const OTHER = 'example.com/links/other';
const digestOf = (data: string | Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const layer = Buffer.from('a layer pushed before its manifest');
const chunked = Buffer.from('0123456789'.repeat(50));

function upload(ta: TestApp, name: string, data: Buffer, digest = digestOf(data), headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return ta.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/?digest=${digest}`, headers: { 'content-type': 'application/octet-stream', ...headers }, payload: data });
}

function blob(ta: TestApp, name: string, digest: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return ta.app.inject({ method, url: `/v2/${name}/blobs/${digest}`, headers });
}

function mount(ta: TestApp, name: string, digest: string, from?: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const query = from === undefined ? `mount=${digest}` : `mount=${digest}&from=${from}`;
  return ta.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/?${query}`, headers });
}

t.test('a monolithic upload is served at its Location at once, by this replica and another, and only in its repository', async (t) => {
  const ta = await makeTestApp(t);
  const replica = await makeTestApp(t, { dir: ta.dir });
  const res = await upload(ta, NAME, layer);
  t.equal(res.statusCode, 201, res.body);
  const location = String(res.headers.location);
  t.equal(location, `/v2/${NAME}/blobs/${digestOf(layer)}`);
  const got = await ta.app.inject({ method: 'GET', url: location });
  t.equal(got.statusCode, 200, got.body);
  t.same(got.rawPayload, layer, 'the bytes, before any manifest names the blob');
  t.equal(got.headers['docker-content-digest'], digestOf(layer));
  t.equal(got.headers['content-length'], String(layer.length));
  const head = await blob(ta, NAME, digestOf(layer), 'HEAD');
  t.equal(head.statusCode, 200);
  t.equal(head.headers['content-length'], String(layer.length));
  const range = await blob(ta, NAME, digestOf(layer), 'GET', { range: 'bytes=2-6' });
  t.equal(range.statusCode, 206);
  t.same(range.rawPayload, layer.subarray(2, 7));
  t.same((await replica.app.inject({ method: 'GET', url: location })).rawPayload, layer, 'another replica on the same storage serves it (the link is in the index)');
  t.equal((await blob(ta, OTHER, digestOf(layer))).statusCode, 404, 'not in a repository it was not uploaded to');
  t.equal((await blob(ta, NAME, digestOf(Buffer.from('never uploaded')))).statusCode, 404, 'nor is an unknown blob');
});

t.test('a chunked session\'s closing PUT is served at its Location at once', async (t) => {
  const ta = await makeTestApp(t);
  const started = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/` });
  t.equal(started.statusCode, 202);
  const session = String(started.headers.location);
  const patched = await ta.app.inject({ method: 'PATCH', url: session, headers: { 'content-type': 'application/octet-stream', 'content-range': '0-299' }, payload: chunked.subarray(0, 300) });
  t.equal(patched.statusCode, 202, patched.body);
  t.equal((await blob(ta, NAME, digestOf(chunked))).statusCode, 404, 'nothing before the closing PUT');
  const closed = await ta.app.inject({
    method: 'PUT',
    url: `${session}?digest=${encodeURIComponent(digestOf(chunked))}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: chunked.subarray(300),
  });
  t.equal(closed.statusCode, 201, closed.body);
  const got = await ta.app.inject({ method: 'GET', url: String(closed.headers.location) });
  t.equal(got.statusCode, 200, got.body);
  t.same(got.rawPayload, chunked);
});

t.test('a failed upload links nothing, also for a blob another repository holds', async (t) => {
  const ta = await makeTestApp(t);
  t.equal((await upload(ta, OTHER, layer)).statusCode, 201);
  const forged = Buffer.from(layer);
  forged[0] = 0x41;
  const wrong = await upload(ta, NAME, forged, digestOf(layer));
  t.equal(wrong.statusCode, 400, 'other bytes under a stored digest');
  t.equal(ociError(wrong.body).code, 'DIGEST_INVALID');
  const notServed = await blob(ta, NAME, digestOf(layer));
  t.equal(notServed.statusCode, 404, 'so the repository does not serve the blob it did not prove to have');
  t.same((await ta.index.ociBlobLinks(digestOf(layer).slice(7))).map((link) => link.name), [OTHER], 'only the real upload is linked');

  const started = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/` });
  const closed = await ta.app.inject({
    method: 'PUT',
    url: `${String(started.headers.location)}?digest=${encodeURIComponent(digestOf(layer))}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: forged,
  });
  t.equal(closed.statusCode, 400, 'nor does a session closed with other bytes');
  t.equal((await blob(ta, NAME, digestOf(layer))).statusCode, 404);
});

t.test('a mount succeeds from a repository that has the blob and that the requester may pull; otherwise it opens a session', async (t) => {
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(`ci:${tokenDigest('ci-token')}\nroot:${tokenDigest('root-token')}\n`, 'test'),
    authorizer: new SecretReads(),
  });
  const ci = { authorization: 'Bearer ci-token' };
  const root = { authorization: 'Bearer root-token' };
  const digest = digestOf(layer);
  t.equal((await upload(ta, NAME, layer)).statusCode, 201);

  const mounted = await mount(ta, OTHER, digest, NAME, ci);
  t.equal(mounted.statusCode, 201, mounted.body);
  t.equal(mounted.headers.location, `/v2/${OTHER}/blobs/${digest}`);
  t.equal(mounted.headers['docker-content-digest'], digest);
  t.same((await blob(ta, OTHER, digest)).rawPayload, layer, 'served in the target at once');

  const fallback = async (res: LightMyRequestResponse, why: string, name = OTHER): Promise<void> => {
    t.equal(res.statusCode, 202, why);
    t.match(res.headers.location, new RegExp(`^/v2/${name}/blobs/uploads/[0-9a-f-]{36}$`), `${why}: an upload session`);
    t.equal(res.headers.range, '0-0');
  };
  await fallback(await mount(ta, 'example.com/links/third', digest, 'example.com/links/empty', ci), 'from a repository that does not have the blob', 'example.com/links/third');
  await fallback(await mount(ta, 'example.com/links/third', digest, undefined, ci), 'without from', 'example.com/links/third');
  await fallback(await mount(ta, 'example.com/links/third', digest, 'Not_An/OCI-Name', ci), 'from a name outside the OCI grammar', 'example.com/links/third');
  await fallback(await mount(ta, 'example.com/links/third', 'sha256:nothex', NAME, ci), 'of a malformed digest', 'example.com/links/third');
  t.equal((await blob(ta, 'example.com/links/third', digest)).statusCode, 404, 'a refused mount links nothing');

  t.equal((await upload(ta, 'secret/app', Buffer.from('classified'))).statusCode, 201, 'anyone may push here');
  const secret = digestOf(Buffer.from('classified'));
  await fallback(await mount(ta, OTHER, secret, 'secret/app', ci), 'from a repository the requester may not pull (403 for it)');
  await fallback(await mount(ta, OTHER, secret, 'secret/app'), 'from a repository an anonymous requester may not pull (401 for it)');
  t.equal((await blob(ta, OTHER, secret)).statusCode, 404, 'the secret blob is not reachable through the target');
  t.equal((await mount(ta, OTHER, secret, 'secret/app', root)).statusCode, 201, 'a requester who may pull it mounts it');

  const viaInvoice = Buffer.from('a parcel of a bindle made through /v1');
  await pushThroughV1(ta, 'example.com/links/v1', '1.0.0', [{ name: 'p.txt', data: viaInvoice }]);
  t.equal((await mount(ta, OTHER, digestOf(viaInvoice), 'example.com/links/v1', ci)).statusCode, 201, 'from a repository whose invoice lists the blob');
  t.same((await blob(ta, OTHER, digestOf(viaInvoice))).rawPayload, viaInvoice);
});

t.test('a hard delete unlinks the bindle\'s blobs from its repository; a yank does not', async (t) => {
  const ta = await makeTestApp(t);
  const kept = Buffer.from('parcel of the kept version');
  const gone = Buffer.from('parcel of the deleted version');
  await pushThroughV1(ta, NAME, '1.0.0', [{ name: 'k.txt', data: kept }]);
  await pushThroughV1(ta, NAME, '2.0.0', [{ name: 'g.txt', data: gone }]);
  for (const data of [kept, gone]) t.equal((await upload(ta, NAME, data)).statusCode, 201);
  await ta.service.yank({ name: NAME, version: '1.0.0' });
  t.equal((await blob(ta, NAME, digestOf(kept))).statusCode, 200, 'a yank keeps what the repository serves');
  await ta.service.deleteInvoice({ name: NAME, version: '2.0.0' }, 'root');
  t.equal((await blob(ta, NAME, digestOf(gone))).statusCode, 404, 'the deleted bindle\'s parcel is no longer served by its repository');
  t.same(await ta.index.ociBlobLinks(digestOf(gone).slice(7)), [], 'its link is gone');
});

t.test('reads of a repository are asked of the authorizer with its name: a hidden one is not served', async (t) => {
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(`root:${tokenDigest('root-token')}\n`, 'test'),
    authorizer: new SecretReads(),
  });
  const hidden = 'secret/app';
  const manifest = await pushThroughV1(ta, hidden, '1.0.0', [{ name: 'a.txt', data: layer }]);
  t.ok(manifest.length > 0);
  const root = { authorization: 'Bearer root-token' };
  for (const url of [`/v2/${hidden}/blobs/${digestOf(layer)}`, `/v2/${hidden}/manifests/1.0.0`, `/v2/${hidden}/tags/list`]) {
    const anonymous = await ta.app.inject({ method: 'GET', url });
    t.equal(anonymous.statusCode, 401, `anonymous: ${url}`);
    t.equal(ociError(anonymous.body).code, 'UNAUTHORIZED');
    t.equal((await ta.app.inject({ method: 'HEAD', url })).statusCode, 401, `anonymous HEAD: ${url}`);
    t.equal((await ta.app.inject({ method: 'GET', url, headers: root })).statusCode, 200, `root: ${url}`);
  }
});

t.test('a monolithic upload that another upload of the same blob beats to the store is linked when its bytes all came', async (t) => {
  const ta = await makeTestApp(t);
  const data = Buffer.alloc(256 * 1024, 'racing blob bytes ');
  const body = new PassThrough();
  const half = data.length >> 1;
  body.write(data.subarray(0, half));
  const reply = ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${digestOf(data)}`, headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) }, payload: body });
  // Once the first half has been taken in, the other upload (straight to the store) wins.
  await new Promise((resolve) => setTimeout(resolve, 50));
  await ta.parcels.put(digestOf(data).slice(7), data.length, Readable.from([data]));
  body.end(data.subarray(half));
  const res = await reply;
  t.equal(res.statusCode, 201, res.body);
  t.same((await blob(ta, NAME, digestOf(data))).rawPayload, data, 'linked: served in its repository');
});

t.test('a repository name longer than any bindle name keeps nothing: no session, no link', async (t) => {
  const ta = await makeTestApp(t);
  const long = `example.com/${'x'.repeat(600)}`;
  const res = await upload(ta, long, layer);
  t.equal(res.statusCode, 404, res.body);
  t.equal(ociError(res.body).code, 'NAME_UNKNOWN');
  t.equal((await ta.app.inject({ method: 'POST', url: `/v2/${long}/blobs/uploads/` })).statusCode, 404, 'nor a session');
  t.same(await ta.index.ociBlobLinkPage(undefined, 10), [], 'nothing linked');
});
