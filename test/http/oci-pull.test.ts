/**
 * Issue 14 §Build 1: pulling bindles over the OCI Distribution API (`/v2`): the version check,
 * manifests by tag and digest (stable across a yank), blobs with Range, tags/list paging,
 * referrers, the error envelope with the route's codes, and the authentication challenge.
 */
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import {
  BINDLE_ARTIFACT_TYPE,
  BINDLE_CONFIG_MEDIA_TYPE,
  BINDLE_SIGNATURE_ARTIFACT_TYPE,
  EMPTY_DIGEST,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  buildBindleManifest,
  type OciDescriptor,
} from '../../core/oci/index.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import { AnonymousGetAuthorizer, StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';
import { manifestOf, ociError, pushThroughV1 } from '../helpers/oci.js';

const digestOf = (data: string | Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const NAME = 'example.com/oci/app';
const alpha = Buffer.from('alpha parcel data, long enough for ranges');
const bravo = Buffer.from('bravo');
const parcels = [{ name: 'b.wasm', data: bravo, mediaType: 'application/wasm' }, { name: 'a.txt', data: alpha }];

async function withBindle(t: Test): Promise<{ ta: TestApp; toml: string }> {
  const ta = await makeTestApp(t);
  const toml = await pushThroughV1(ta, NAME, '1.0.0+build.7', parcels);
  return { ta, toml };
}

t.test('GET /v2/ answers 200 {} with the API version header', async (t) => {
  const ta = await makeTestApp(t);
  for (const url of ['/v2/', '/v2']) {
    const res = await ta.app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 200, url);
    t.equal(res.body, '{}');
    t.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  }
});

t.test('manifests by tag and digest: the deterministic manifest of the invoice stored at create', async (t) => {
  const { ta, toml } = await withBindle(t);
  const res = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.headers['content-type'], OCI_MANIFEST_MEDIA_TYPE);
  const digest = digestOf(res.rawPayload);
  t.equal(res.headers['docker-content-digest'], digest);
  t.equal(res.headers['content-length'], String(res.rawPayload.length));
  t.same(res.rawPayload, buildBindleManifest(Buffer.from(toml), parseInvoice(toml)).bytes, 'the core/oci manifest of the stored TOML');
  const manifest = manifestOf(res.body);
  t.equal(manifest.artifactType, BINDLE_ARTIFACT_TYPE);
  t.same(manifest.config, { mediaType: BINDLE_CONFIG_MEDIA_TYPE, digest: digestOf(toml), size: Buffer.byteLength(toml) });
  t.same(manifest.layers.map((l) => [l.mediaType, l.digest, l.size, l.annotations?.['org.opencontainers.image.title']]), [
    ['application/wasm', digestOf(bravo), bravo.length, 'b.wasm'],
    ['text/plain', digestOf(alpha), alpha.length, 'a.txt'],
  ], 'one layer per parcel in invoice order');

  const head = await ta.app.inject({ method: 'HEAD', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  t.equal(head.statusCode, 200);
  t.equal(head.body, '');
  t.equal(head.headers['docker-content-digest'], digest);
  t.equal(head.headers['content-length'], String(res.rawPayload.length));
  const byDigest = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/${digest}` });
  t.equal(byDigest.statusCode, 200);
  t.same(byDigest.rawPayload, res.rawPayload, 'the same bytes by digest');
});

t.test('blobs: parcels, the config, the manifest and the empty blob, with Range', async (t) => {
  const { ta, toml } = await withBindle(t);
  const manifest = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  const blobs: Array<[string, Buffer]> = [
    [digestOf(alpha), alpha],
    [digestOf(bravo), bravo],
    [digestOf(toml), Buffer.from(toml)],
    [digestOf(manifest.rawPayload), manifest.rawPayload],
    [EMPTY_DIGEST, Buffer.from('{}')],
  ];
  for (const [digest, data] of blobs) {
    const res = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digest}` });
    t.equal(res.statusCode, 200, digest);
    t.same(res.rawPayload, data, `${digest} bytes`);
    t.equal(res.headers['docker-content-digest'], digest);
    t.equal(res.headers['content-length'], String(data.length));
    const head = await ta.app.inject({ method: 'HEAD', url: `/v2/${NAME}/blobs/${digest}` });
    t.equal(head.statusCode, 200);
    t.equal(head.headers['content-length'], String(data.length), `HEAD ${digest}`);
  }
  for (const [digest, data] of [blobs[0], blobs[2]] as Array<[string, Buffer]>) {
    const part = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digest}`, headers: { range: 'bytes=2-6' } });
    t.equal(part.statusCode, 206);
    t.same(part.rawPayload, data.subarray(2, 7));
    t.equal(part.headers['content-range'], `bytes 2-6/${data.length}`);
    t.equal(part.headers['content-length'], '5');
    for (const range of ['bytes=500-0', `bytes=${data.length}-`, 'bytes=5-1']) {
      const bad = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digest}`, headers: { range } });
      t.equal(bad.statusCode, 416, range);
      t.equal(bad.headers['content-range'], `bytes */${data.length}`);
    }
  }
});

t.test('conditional requests on manifests and blobs follow the ETag they carry (RFC 9110)', async (t) => {
  const { ta } = await withBindle(t);
  const manifest = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  const blob = digestOf(alpha);
  for (const url of [`/v2/${NAME}/manifests/1.0.0_build.7`, `/v2/${NAME}/blobs/${blob}`]) {
    const etag = String((await ta.app.inject({ method: 'GET', url })).headers.etag);
    for (const method of ['GET', 'HEAD'] as const) {
      for (const ifNoneMatch of [etag, '*', `W/${etag}`, `"other", ${etag}`]) {
        const res = await ta.app.inject({ method, url, headers: { 'if-none-match': ifNoneMatch } });
        t.equal(res.statusCode, 304, `${method} ${url} If-None-Match: ${ifNoneMatch}`);
        t.equal(res.body, '', '304: no body');
        t.equal(res.headers.etag, etag);
      }
      t.equal((await ta.app.inject({ method, url, headers: { 'if-none-match': '"other"' } })).statusCode, 200, 'another tag: 200');
      const failed = await ta.app.inject({ method, url, headers: { 'if-match': '"other"' } });
      t.equal(failed.statusCode, 412, `${method} ${url} If-Match mismatch`);
      if (method === 'GET') t.equal(ociError(failed.body).detail?.code, 'precondition_failed');
    }
  }
  const etag = `"${blob}"`;
  const ranged = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${blob}`, headers: { range: 'bytes=0-3', 'if-range': etag } });
  t.equal(ranged.statusCode, 206, 'If-Range with the current tag: the range');
  const whole = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${blob}`, headers: { range: 'bytes=0-3', 'if-range': '"other"' } });
  t.equal(whole.statusCode, 200, 'If-Range with another tag: the whole blob');
  t.same(whole.rawPayload, alpha);
  t.ok(manifest.headers.etag, 'manifests carry an ETag');
});

t.test('parcel blobs are served as /v1 serves parcels: from the same reader, with conditional requests and protective headers', async (t) => {
  const { ta } = await withBindle(t);
  const digest = digestOf(alpha);
  const before = ta.service.reader.usage().bytes;
  const res = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digest}` });
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, `"${digest}"`, 'the tag is the digest');
  t.equal(res.headers['content-type'], 'application/octet-stream');
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.equal(res.headers['accept-ranges'], 'bytes');
  t.ok(ta.service.reader.usage().bytes >= before + alpha.length, 'the small parcel is kept by the reader /v1 uses');
  for (const method of ['GET', 'HEAD'] as const) {
    const cached = await ta.app.inject({ method, url: `/v2/${NAME}/blobs/${digest}`, headers: { 'if-none-match': `"${digest}"` } });
    t.equal(cached.statusCode, 304, `${method} with a matching If-None-Match`);
    t.equal(cached.rawPayload.length, 0);
  }
  const other = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digest}`, headers: { range: 'bytes=0-3', 'if-range': '"other"' } });
  t.equal(other.statusCode, 200, 'an If-Range naming another tag gets the whole blob');
  t.same(other.rawPayload, alpha);
});

t.test('errors: the OCI envelope with the code of the route', async (t) => {
  const { ta } = await withBindle(t);
  const missing = `sha256:${'0'.repeat(64)}`;
  const cases: Array<[string, string, number, string]> = [
    ['GET', `/v2/${NAME}/manifests/9.9.9`, 404, 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/${NAME}/manifests/latest`, 404, 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/${NAME}/manifests/${missing}`, 404, 'MANIFEST_UNKNOWN'],
    ['HEAD', `/v2/${NAME}/manifests/${missing}`, 404, ''],
    ['GET', `/v2/${NAME}/manifests/sha512:${'0'.repeat(128)}`, 404, 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/${NAME}/blobs/${missing}`, 404, 'BLOB_UNKNOWN'],
    ['GET', `/v2/other.com/app/blobs/${digestOf(alpha)}`, 404, 'NAME_UNKNOWN'],
    ['GET', `/v2/Example.com/App/manifests/1.0.0`, 404, 'NAME_UNKNOWN'],
    ['GET', `/v2/nothing.here/tags/list`, 404, 'NAME_UNKNOWN'],
    ['GET', `/v2/${NAME}/tags/list?n=x`, 400, 'PAGINATION_NUMBER_INVALID'],
    ['GET', `/v2/${NAME}/tags/list?n=-1`, 400, 'PAGINATION_NUMBER_INVALID'],
    ['GET', `/v2/${NAME}/referrers/nodigest`, 400, 'DIGEST_INVALID'],
    ['GET', `/v2/${NAME}/nothing`, 404, 'NAME_UNKNOWN'],
    ['DELETE', `/v2/${NAME}/manifests/1.0.0_build.7`, 405, 'UNSUPPORTED'],
    ['PUT', `/v2/${NAME}/nothing`, 404, 'NAME_UNKNOWN'],
  ];
  for (const [method, url, status, code] of cases) {
    const res = await ta.app.inject({ method: method as 'GET', url });
    t.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
    t.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    if (method === 'HEAD') {
      t.equal(res.body, '', 'HEAD: no body');
      continue;
    }
    t.match(res.headers['content-type'], /application\/json/);
    const error = ociError(res.body);
    t.equal(error.code, code, `${method} ${url}`);
    t.type(error.message, 'string');
    t.type(error.detail?.code, 'string', 'detail carries the Bindle code');
  }
  const deleted = await ta.app.inject({ method: 'DELETE', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  t.match(ociError(deleted.body).message, /yanked/);
});

t.test('a repository that does not exist is NAME_UNKNOWN on manifests and blobs; one whose bindles are all yanked exists', async (t) => {
  const { ta } = await withBindle(t);
  const missing = `sha256:${'0'.repeat(64)}`;
  for (const method of ['GET', 'HEAD'] as const) {
    for (const url of [
      '/v2/nothing.here/manifests/1.0.0',
      `/v2/nothing.here/manifests/${missing}`,
      `/v2/nothing.here/blobs/${missing}`,
      `/v2/nothing.here/blobs/${digestOf(alpha)}`,
    ]) {
      const res = await ta.app.inject({ method, url });
      t.equal(res.statusCode, 404, `${method} ${url}`);
      if (method === 'GET') t.equal(ociError(res.body).code, 'NAME_UNKNOWN', `${method} ${url}: ${res.body}`);
    }
  }
  t.equal((await ta.app.inject({ method: 'DELETE', url: `/v1/_i/${NAME}/1.0.0+build.7` })).statusCode, 200);
  const yanked = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  t.equal(ociError(yanked.body).code, 'MANIFEST_UNKNOWN', 'the repository still exists: its version is yanked');
  const blob = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${missing}` });
  t.equal(ociError(blob.body).code, 'BLOB_UNKNOWN');
});

t.test('tags/list: unyanked versions in byte order, paged with n and last and a Link header', async (t) => {
  const ta = await makeTestApp(t);
  for (const version of ['1.10.0', '1.2.0', '1.0.0', '2.0.0-rc.1+b']) await pushThroughV1(ta, NAME, version, []);
  const all = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list` });
  t.equal(all.statusCode, 200);
  t.same(JSON.parse(all.body), { name: NAME, tags: ['1.0.0', '1.10.0', '1.2.0', '2.0.0-rc.1_b'] });
  t.equal(all.headers.link, undefined, 'no more pages');
  const first = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list?n=2` });
  t.same(JSON.parse(first.body), { name: NAME, tags: ['1.0.0', '1.10.0'] });
  t.equal(first.headers.link, `</v2/${NAME}/tags/list?n=2&last=1.10.0>; rel="next"`);
  const next = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list?n=2&last=1.10.0` });
  t.same(JSON.parse(next.body), { name: NAME, tags: ['1.2.0', '2.0.0-rc.1_b'] });
  t.equal(next.headers.link, undefined);
  const none = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list?n=0` });
  t.same(JSON.parse(none.body), { name: NAME, tags: [] });
  const yank = await ta.app.inject({ method: 'DELETE', url: `/v1/_i/${NAME}/1.2.0` });
  t.equal(yank.statusCode, 200);
  const after = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list` });
  t.same((JSON.parse(after.body) as { tags: string[] }).tags, ['1.0.0', '1.10.0', '2.0.0-rc.1_b'], 'yanked: not listed');
});

t.test('a yank: gone by tag, served by digest with the same bytes and a yanked header', async (t) => {
  const { ta } = await withBindle(t);
  const before = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  const digest = digestOf(before.rawPayload);
  t.equal((await ta.app.inject({ method: 'DELETE', url: `/v1/_i/${NAME}/1.0.0+build.7` })).statusCode, 200);
  const byTag = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  t.equal(byTag.statusCode, 404);
  t.equal(ociError(byTag.body).code, 'MANIFEST_UNKNOWN');
  t.match(ociError(byTag.body).message, /yanked/);
  const byDigest = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/${digest}` });
  t.equal(byDigest.statusCode, 200);
  t.same(byDigest.rawPayload, before.rawPayload, 'the manifest digest did not move');
  t.equal(byDigest.headers['bindle-yanked'], 'true');
  t.equal(before.headers['bindle-yanked'], undefined);
  const layer = manifestOf(byDigest.body).layers[0] as OciDescriptor;
  t.equal((await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${layer.digest}` })).statusCode, 200, 'its blobs stay');
});

t.test('referrers: one per signature (creator and host), filtered by artifactType', async (t) => {
  const { ta } = await withBindle(t);
  const manifest = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_build.7` });
  const digest = digestOf(manifest.rawPayload);
  const res = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/referrers/${digest}` });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], OCI_INDEX_MEDIA_TYPE);
  const index = JSON.parse(res.body) as { schemaVersion: number; mediaType: string; manifests: OciDescriptor[] };
  t.equal(index.mediaType, OCI_INDEX_MEDIA_TYPE);
  t.same(index.manifests.map((m) => m.annotations?.['io.bindle.signature.role']), ['creator', 'host']);
  for (const descriptor of index.manifests) {
    t.equal(descriptor.artifactType, BINDLE_SIGNATURE_ARTIFACT_TYPE);
    const referrer = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/${descriptor.digest}` });
    t.equal(referrer.statusCode, 200);
    t.equal(digestOf(referrer.rawPayload), descriptor.digest);
    t.equal(manifestOf(referrer.body).subject?.digest, digest, 'its subject is the bindle manifest');
  }
  const filtered = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/referrers/${digest}?artifactType=${encodeURIComponent(BINDLE_SIGNATURE_ARTIFACT_TYPE)}` });
  t.equal(filtered.headers['oci-filters-applied'], 'artifactType');
  t.equal((JSON.parse(filtered.body) as { manifests: unknown[] }).manifests.length, 2);
  const other = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/referrers/${digest}?artifactType=application%2Fvnd.example` });
  t.same((JSON.parse(other.body) as { manifests: unknown[] }).manifests, []);
  const unknown = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/referrers/sha256:${'1'.repeat(64)}` });
  t.equal(unknown.statusCode, 200, 'an unknown subject has no referrers (never 404)');
  t.same((JSON.parse(unknown.body) as { manifests: unknown[] }).manifests, []);
});

t.test('a bindle without parcels has the empty-descriptor layer; names outside the OCI grammar are unreachable', async (t) => {
  const ta = await makeTestApp(t);
  await pushThroughV1(ta, 'example.com/empty', '0.1.0', []);
  const res = await ta.app.inject({ method: 'GET', url: '/v2/example.com/empty/manifests/0.1.0' });
  t.same(manifestOf(res.body).layers, [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: 2 }]);
  await pushThroughV1(ta, 'Example.com/Upper', '0.1.0', []);
  const upper = await ta.app.inject({ method: 'GET', url: '/v2/Example.com/Upper/manifests/0.1.0' });
  t.equal(upper.statusCode, 404);
  t.equal(ociError(upper.body).code, 'NAME_UNKNOWN');
  t.match(ociError(upper.body).message, /OCI name grammar/);
});

t.test('authentication: the same authenticator, a Basic challenge OCI clients understand, anonymous reads', async (t) => {
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(`ci:${tokenDigest('ci-token')}\n`, 'test'),
    authorizer: new AnonymousGetAuthorizer(),
  });
  const invoice = signedInvoice(NAME, '1.0.0', []);
  const created = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { authorization: 'Bearer ci-token', 'content-type': 'application/toml' }, payload: renderInvoice(invoice),
  });
  t.equal(created.statusCode, 201, created.body);
  const ping = await ta.app.inject({ method: 'GET', url: '/v2/' });
  t.equal(ping.statusCode, 401, 'anonymous clients are asked for credentials at the version check');
  t.equal(ping.headers['www-authenticate'], 'Basic realm="bindle"');
  t.equal(ociError(ping.body).code, 'UNAUTHORIZED');
  for (const blank of ['', '   ']) {
    const empty = await ta.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: blank } });
    t.equal(empty.statusCode, 401, `a blank Authorization header (${JSON.stringify(blank)}) carries no credentials: challenged, as /v1 treats it`);
    t.equal(empty.headers['www-authenticate'], 'Basic realm="bindle"');
  }
  t.equal((await ta.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: 'Bearer ci-token' } })).statusCode, 200);
  const bad = await ta.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: 'Bearer wrong' } });
  t.equal(bad.statusCode, 401);
  t.equal(bad.headers['www-authenticate'], 'Basic realm="bindle"');
  t.equal((await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0` })).statusCode, 200, 'anonymous reads are allowed');
  const del = await ta.app.inject({ method: 'DELETE', url: `/v2/${NAME}/manifests/1.0.0` });
  t.equal(del.statusCode, 401, 'an anonymous write is challenged');
  t.equal(ociError(del.body).code, 'UNAUTHORIZED');
});
