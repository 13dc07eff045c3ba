/**
 * Issue 14 §Build 2: pushing a signed bindle over `/v2` with monolithic blob uploads and
 * cross-repository mounts (upload sessions: oci-upload-sessions.test.ts), then a manifest PUT that becomes a bindle exactly as
 * POST /_i makes one (verified, host-signed, pushed bytes kept verbatim); every refusal with
 * its OCI code; and nothing half-written on a refusal.
 */
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import type { Invoice } from '../../schema/index.js';
import { renderInvoice, parseInvoice } from '../../core/codec/invoice-codec.js';
import { createSecretKey } from '../../core/signing/keys.js';
import { OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, buildBindleManifest, type OciDescriptor } from '../../core/oci/index.js';
import { AnonymousGetAuthorizer, StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';
import { manifestOf, ociError } from '../helpers/oci.js';

const digestOf = (data: string | Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const NAME = 'example.com/oci/pushed';
const alpha = Buffer.from('alpha parcel');
const bravo = Buffer.from('bravo parcel');
const parcels = [{ name: 'a.txt', data: alpha }, { name: 'b.wasm', data: bravo, mediaType: 'application/wasm' }];

interface Artifact {
  invoice: Invoice;
  config: Buffer;
  manifest: Buffer;
}

function artifact(version = '1.0.0+b.1', invoice = signedInvoice(NAME, version, parcels)): Artifact {
  const config = Buffer.from(renderInvoice(invoice));
  return { invoice, config, manifest: buildBindleManifest(config, invoice).bytes };
}

function uploadBlob(ta: TestApp, data: Buffer, digest = digestOf(data), headers: Record<string, string> = {}) {
  return ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${digest}`, headers: { 'content-type': 'application/octet-stream', ...headers }, payload: data });
}

function putManifest(ta: TestApp, bytes: Buffer | string, reference = '1.0.0_b.1', headers: Record<string, string> = {}) {
  return ta.app.inject({ method: 'PUT', url: `/v2/${NAME}/manifests/${reference}`, headers: { 'content-type': OCI_MANIFEST_MEDIA_TYPE, ...headers }, payload: bytes });
}

async function uploadAll(t: Test, ta: TestApp, a: Artifact): Promise<void> {
  for (const data of [alpha, bravo, a.config]) {
    const res = await uploadBlob(ta, data);
    t.equal(res.statusCode, 201, res.body);
    t.equal(res.headers.location, `/v2/${NAME}/blobs/${digestOf(data)}`);
    t.equal(res.headers['docker-content-digest'], digestOf(data));
  }
}

t.test('a pushed bindle manifest becomes a bindle as POST /_i makes one, its bytes kept verbatim', async (t) => {
  const ta = await makeTestApp(t);
  const a = artifact();
  await uploadAll(t, ta, a);
  const res = await putManifest(ta, a.manifest);
  t.equal(res.statusCode, 201, res.body);
  const digest = digestOf(a.manifest);
  t.equal(res.headers['docker-content-digest'], digest);
  t.equal(res.headers.location, `/v2/${NAME}/manifests/${digest}`);

  const pulled = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/1.0.0_b.1` });
  t.same(pulled.rawPayload, a.manifest, 'the pushed bytes, so the client digest holds');
  const config = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digestOf(a.config)}` });
  t.same(config.rawPayload, a.config, 'the pushed config blob');
  const stored = await ta.app.inject({ method: 'GET', url: `/v1/_i/${NAME}/1.0.0+b.1`, headers: { accept: 'application/toml' } });
  t.equal(stored.statusCode, 200);
  const invoice = parseInvoice(stored.body);
  t.same(invoice.signature?.map((s) => s.role), ['creator', 'host'], 'verified and host-signed');
  const parcel = await ta.app.inject({ method: 'GET', url: `/v1/_i/${NAME}/1.0.0+b.1@${digestOf(bravo).slice(7)}` });
  t.same(parcel.rawPayload, bravo, 'its parcels are served by the Bindle API');
  const referrers = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/referrers/${digest}` });
  t.equal(referrers.headers['content-type'], OCI_INDEX_MEDIA_TYPE);
  const listed = (JSON.parse(referrers.body) as { manifests: OciDescriptor[] }).manifests;
  t.same(listed.map((d) => d.annotations?.['io.bindle.signature.role']), ['creator', 'host'], 'the host counter-signature is a referrer');

  t.equal((await putManifest(ta, a.manifest)).statusCode, 201, 'pushing the same manifest again is accepted');
  t.equal((await putManifest(ta, a.manifest, digest)).statusCode, 201, 'also by its digest');
  const other = manifestOf(a.manifest);
  const changed = Buffer.from(JSON.stringify({ ...other, annotations: { ...other.annotations, extra: 'x' } }));
  const conflict = await putManifest(ta, changed);
  t.equal(conflict.statusCode, 409, conflict.body);
  t.equal(ociError(conflict.body).code, 'DENIED');
  t.match(ociError(conflict.body).message, /immutable/);
});

t.test('a manifest pulled from a bindle made through the Bindle API pushes back (its config is served from the index)', async (t) => {
  const ta = await makeTestApp(t);
  const invoice = signedInvoice(NAME, '2.0.0', parcels);
  const created = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) });
  t.equal(created.statusCode, 202, created.body);
  for (const p of parcels) {
    const res = await ta.app.inject({ method: 'POST', url: `/v1/_i/${NAME}/2.0.0@${digestOf(p.data).slice(7)}`, payload: p.data, headers: { 'content-type': 'application/octet-stream' } });
    t.equal(res.statusCode, 200, res.body);
  }
  const pulled = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/2.0.0`, headers: { accept: OCI_MANIFEST_MEDIA_TYPE } });
  t.equal(pulled.statusCode, 200, pulled.body);
  const configDigest = manifestOf(pulled.rawPayload).config.digest;
  t.equal((await ta.app.inject({ method: 'HEAD', url: `/v2/${NAME}/blobs/${configDigest}` })).statusCode, 200, 'its config blob is there for a client to skip');
  t.notOk(await ta.parcels.has(configDigest.slice(7)), 'though not as an uploaded blob');
  const again = await putManifest(ta, pulled.rawPayload, '2.0.0');
  t.equal(again.statusCode, 201, again.body);
  t.equal(again.headers['docker-content-digest'], digestOf(pulled.rawPayload));
  const otherTag = await putManifest(ta, pulled.rawPayload, '2.0.1');
  t.equal(otherTag.statusCode, 400, 'under another tag it is still refused');
  t.equal(ociError(otherTag.body).code, 'MANIFEST_INVALID');
  const elsewhere = await ta.app.inject({ method: 'PUT', url: '/v2/example.com/oci/elsewhere/manifests/2.0.0', headers: { 'content-type': OCI_MANIFEST_MEDIA_TYPE }, payload: pulled.rawPayload });
  t.equal(elsewhere.statusCode, 400, 'nor does the index lend the config to another repository');
  t.equal(ociError(elsewhere.body).code, 'MANIFEST_BLOB_UNKNOWN');
});

t.test('monolithic blob uploads: digest checked, mounts, unknown sessions', async (t) => {
  const ta = await makeTestApp(t);
  const wrong = await uploadBlob(ta, alpha, digestOf(bravo));
  t.equal(wrong.statusCode, 400);
  t.equal(ociError(wrong.body).code, 'DIGEST_INVALID');
  t.notOk(await ta.parcels.has(digestOf(bravo).slice(7)), 'nothing stored under the claimed digest');
  t.notOk(await ta.parcels.has(digestOf(alpha).slice(7)), 'nor under the real one');
  const badDigest = await uploadBlob(ta, alpha, 'sha256:nothex');
  t.equal(badDigest.statusCode, 400);
  t.equal(ociError(badDigest.body).code, 'BLOB_UPLOAD_INVALID');
  t.equal((await uploadBlob(ta, alpha)).statusCode, 201);
  t.equal((await uploadBlob(ta, alpha)).statusCode, 201, 'an existing blob is accepted again');
  const notAlpha = Buffer.from('alpha parcem');
  const stillChecked = await uploadBlob(ta, notAlpha, digestOf(alpha));
  t.equal(stillChecked.statusCode, 400, 'but only with its own bytes');
  t.equal(ociError(stillChecked.body).code, 'DIGEST_INVALID');
  const shorter = await uploadBlob(ta, alpha.subarray(1), digestOf(alpha));
  t.equal(shorter.statusCode, 400, 'and its own size');
  t.equal((await ta.parcels.stat(digestOf(alpha).slice(7)))?.size, alpha.length, 'the stored blob is untouched');
  const mount = await ta.app.inject({ method: 'POST', url: `/v2/other.com/app/blobs/uploads/?mount=${digestOf(alpha)}&from=${NAME}` });
  t.equal(mount.statusCode, 201, 'a blob uploaded to one repository mounts into another');
  t.equal(mount.headers.location, `/v2/other.com/app/blobs/${digestOf(alpha)}`);
  const notThere = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=${digestOf(alpha)}&from=third.com/app` });
  t.equal(notThere.statusCode, 202, 'a mount from a repository without the blob opens an upload session instead, though the blob is stored');
  const noMount = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=${digestOf(bravo)}&from=other.com/app` });
  t.equal(noMount.statusCode, 202, 'a mount of an unknown blob opens an upload session instead');
  t.match(noMount.headers.location, new RegExp(`^/v2/${NAME}/blobs/uploads/[0-9a-f-]{36}$`));
  for (const method of ['PATCH', 'PUT'] as const) {
    const res = await ta.app.inject({ method, url: `/v2/${NAME}/blobs/uploads/some-session?digest=${digestOf(alpha)}`, payload: 'x' });
    t.equal(res.statusCode, 404, method);
    t.equal(ociError(res.body).code, 'BLOB_UPLOAD_UNKNOWN');
  }
  const toManifests = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/manifests/1.0.0` });
  t.equal(toManifests.statusCode, 405);
});

t.test('manifest PUT refusals: what this registry accepts, and nothing stored', async (t) => {
  const ta = await makeTestApp(t);
  const a = artifact();
  const early = await putManifest(ta, a.manifest);
  t.equal(early.statusCode, 400);
  t.equal(ociError(early.body).code, 'MANIFEST_BLOB_UNKNOWN', 'the config blob is not uploaded yet');
  t.equal((await uploadBlob(ta, a.config)).statusCode, 201);
  const noLayers = await putManifest(ta, a.manifest);
  t.equal(ociError(noLayers.body).code, 'MANIFEST_BLOB_UNKNOWN', 'nor are the layers');
  t.match(ociError(noLayers.body).message, new RegExp(digestOf(alpha)));
  await uploadAll(t, ta, a);

  const m = manifestOf(a.manifest);
  const untrusted = artifact('2.0.0', signedInvoice(NAME, '2.0.0', parcels, { key: createSecretKey('Stranger', ['creator']) }));
  t.equal((await uploadBlob(ta, untrusted.config)).statusCode, 201);
  const otherName = artifact('3.0.0', signedInvoice('example.com/elsewhere', '3.0.0', parcels));
  t.equal((await uploadBlob(ta, otherName.config)).statusCode, 201);
  const image = { ...m, artifactType: undefined, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(a.config), size: a.config.length } };
  const cases: Array<[string, Buffer | string, string, number, string, RegExp?]> = [
    ['not JSON', '{', '1.0.0_b.1', 400, 'MANIFEST_INVALID'],
    ['an image, not a bindle', JSON.stringify(image), '1.0.0_b.1', 400, 'UNSUPPORTED', /bindles only/],
    ['an index', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX_MEDIA_TYPE, manifests: [] }), '1.0.0_b.1', 400, 'UNSUPPORTED'],
    ['the wrong tag', a.manifest, '1.0.0', 400, 'MANIFEST_INVALID', /tag of its version: 1.0.0_b.1/],
    ['the wrong digest', a.manifest, `sha256:${'0'.repeat(64)}`, 400, 'DIGEST_INVALID'],
    ['layers out of order', JSON.stringify({ ...m, layers: [...m.layers].reverse() }), '1.0.0_b.1', 400, 'MANIFEST_INVALID', /layers\[0\]/],
    ['an untrusted signature', untrusted.manifest, '2.0.0', 400, 'MANIFEST_INVALID'],
    ['another bindle name', otherName.manifest, '3.0.0', 400, 'MANIFEST_INVALID', /example.com\/elsewhere/],
  ];
  for (const [what, bytes, reference, status, code, message] of cases) {
    const res = await putManifest(ta, typeof bytes === 'string' ? Buffer.from(bytes) : bytes, reference);
    t.equal(res.statusCode, status, `${what}: ${res.body}`);
    t.equal(ociError(res.body).code, code, what);
    if (message !== undefined) t.match(ociError(res.body).message, message, what);
  }
  t.equal(await ta.index.count(), 0, 'no bindle was created');
  const wrongType = await putManifest(ta, a.manifest, '1.0.0_b.1', { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
  t.equal(ociError(wrongType.body).code, 'MANIFEST_INVALID', 'a Content-Type that differs from the mediaType');
});

t.test('pushes need the push grant: anonymous clients get the Basic challenge', async (t) => {
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(`ci:${tokenDigest('ci-token')}\n`, 'test'),
    authorizer: new AnonymousGetAuthorizer(),
  });
  const a = artifact();
  const anonymous = await uploadBlob(ta, a.config);
  t.equal(anonymous.statusCode, 401);
  t.equal(anonymous.headers['www-authenticate'], 'Basic realm="bindle"');
  t.equal(ociError(anonymous.body).code, 'UNAUTHORIZED');
  const auth = { authorization: 'Bearer ci-token' };
  for (const data of [alpha, bravo, a.config]) t.equal((await uploadBlob(ta, data, digestOf(data), auth)).statusCode, 201);
  t.equal((await putManifest(ta, a.manifest)).statusCode, 401, 'an anonymous manifest push');
  t.equal((await putManifest(ta, a.manifest, '1.0.0_b.1', auth)).statusCode, 201);
});

t.test('a manifest names only blobs of its own repository: one stored for another needs a mount first', async (t) => {
  const ta = await makeTestApp(t);
  const a = artifact();
  const elsewhere = 'example.com/oci/elsewhere';
  for (const data of [alpha, bravo, a.config]) {
    const res = await ta.app.inject({ method: 'POST', url: `/v2/${elsewhere}/blobs/uploads/?digest=${digestOf(data)}`, headers: { 'content-type': 'application/octet-stream' }, payload: data });
    t.equal(res.statusCode, 201, res.body);
  }
  let res = await putManifest(ta, a.manifest);
  t.equal(res.statusCode, 400, 'the config blob was uploaded to another repository');
  t.equal(ociError(res.body).code, 'MANIFEST_BLOB_UNKNOWN');
  t.match(ociError(res.body).message, `upload the config blob ${digestOf(a.config)} to ${NAME} first`);
  t.equal((await uploadBlob(ta, a.config)).statusCode, 201);
  res = await putManifest(ta, a.manifest);
  t.equal(res.statusCode, 400, 'so were its layers');
  t.equal(ociError(res.body).code, 'MANIFEST_BLOB_UNKNOWN');
  t.match(ociError(res.body).message, `upload these layers to ${NAME} first: ${digestOf(alpha)}, ${digestOf(bravo)}`);
  t.equal((await ta.app.inject({ method: 'GET', url: `/v1/_i/${NAME}/1.0.0+b.1` })).statusCode, 404, 'nothing was stored');
  for (const data of [alpha, bravo]) {
    const mounted = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=${digestOf(data)}&from=${elsewhere}` });
    t.equal(mounted.statusCode, 201, mounted.body);
  }
  res = await putManifest(ta, a.manifest);
  t.equal(res.statusCode, 201, `once mounted: ${res.body}`);
});
