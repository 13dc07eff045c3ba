/**
 * Issue 14 §Build 2, OCI blob upload sessions (distribution-spec end-4a, end-5, end-6, end-13,
 * end-14): POST opens a session, PATCH chunks (Content-Range must continue at the current
 * offset, else 416; without it a streamed append), GET status, the closing PUT `?digest=`
 * (optionally with a last chunk), DELETE cancel; errors with their OCI codes; the state kept in
 * storage, so a second app on the same storage (another replica) continues a session; and
 * nothing visible before the blob is complete and verified.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import type { LightMyRequestResponse } from 'fastify';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';
import { ociError } from '../helpers/oci.js';

const NAME = 'example.com/oci/sessions';
const OTHER = 'example.com/oci/other';
const digestOf = (data: string | Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const blob = Buffer.from('0123456789'.repeat(30));

async function open(ta: TestApp, name = NAME): Promise<string> {
  const res = await ta.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/` });
  if (res.statusCode !== 202) throw new Error(`POST: ${res.statusCode} ${res.body}`);
  return String(res.headers.location);
}

function patch(ta: TestApp, location: string, data: Buffer, range?: string): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (range !== undefined) headers['content-range'] = range;
  return ta.app.inject({ method: 'PATCH', url: location, headers, payload: data });
}

function close(ta: TestApp, location: string, digest: string, data: Buffer = Buffer.alloc(0)): Promise<LightMyRequestResponse> {
  return ta.app.inject({ method: 'PUT', url: `${location}?digest=${encodeURIComponent(digest)}`, headers: { 'content-type': 'application/octet-stream' }, payload: data });
}

t.test('POST, chunked PATCHes in order, GET status, closing PUT: the blob is stored and served', async (t) => {
  const ta = await makeTestApp(t);
  const started = await ta.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/` });
  t.equal(started.statusCode, 202);
  const location = String(started.headers.location);
  const uuid = location.split('/').at(-1) ?? '';
  t.match(location, new RegExp(`^/v2/${NAME}/blobs/uploads/[0-9a-f-]{36}$`));
  t.equal(started.headers['docker-upload-uuid'], uuid);
  t.equal(started.headers.range, '0-0');

  const first = await patch(ta, location, blob.subarray(0, 100), '0-99');
  t.equal(first.statusCode, 202, first.body);
  t.equal(first.headers.range, '0-99');
  t.equal(first.headers.location, location);
  const outOfOrder = await patch(ta, location, blob.subarray(150, 200), '150-199');
  t.equal(outOfOrder.statusCode, 416, 'a chunk that does not continue at the offset');
  t.equal(ociError(outOfOrder.body).code, 'BLOB_UPLOAD_INVALID');
  t.equal((await patch(ta, location, blob.subarray(0, 100), '0-99')).statusCode, 416, 'nor a repeated one');
  const streamed = await patch(ta, location, blob.subarray(100, 200));
  t.equal(streamed.statusCode, 202, 'without Content-Range: appended');
  t.equal(streamed.headers.range, '0-199');
  const status = await ta.app.inject({ method: 'GET', url: location });
  t.equal(status.statusCode, 204);
  t.equal(status.headers.range, '0-199');
  t.equal(status.headers['docker-upload-uuid'], uuid);
  t.notOk(await ta.parcels.has(digestOf(blob).slice(7)), 'nothing partial is visible as the blob');

  const done = await close(ta, location, digestOf(blob), blob.subarray(200));
  t.equal(done.statusCode, 201, done.body);
  t.equal(done.headers.location, `/v2/${NAME}/blobs/${digestOf(blob)}`);
  t.equal(done.headers['docker-content-digest'], digestOf(blob));
  t.ok(await ta.parcels.has(digestOf(blob).slice(7)), 'the blob is stored');
  const mounted = await ta.app.inject({ method: 'POST', url: `/v2/${OTHER}/blobs/uploads/?mount=${digestOf(blob)}&from=${NAME}` });
  t.equal(mounted.statusCode, 201, 'and can be mounted');

  const after = await ta.app.inject({ method: 'GET', url: location });
  t.equal(after.statusCode, 404, 'a closed session is gone');
  t.equal(ociError(after.body).code, 'BLOB_UPLOAD_UNKNOWN');
});

t.test('a session is continued and closed by a second app on the same storage (another replica)', async (t) => {
  const first = await makeTestApp(t);
  const second = await makeTestApp(t, { dir: first.dir });
  const location = await open(first);
  t.equal((await patch(first, location, blob.subarray(0, 120), '0-119')).statusCode, 202);
  const continued = await patch(second, location, blob.subarray(120, 250), '120-249');
  t.equal(continued.statusCode, 202, continued.body);
  t.equal(continued.headers.range, '0-249');
  t.equal((await patch(first, location, blob.subarray(120, 250), '120-249')).statusCode, 416, 'the first app sees the offset the second moved');
  const done = await close(first, location, digestOf(blob), blob.subarray(250));
  t.equal(done.statusCode, 201, done.body);
  t.equal((await second.app.inject({ method: 'GET', url: location })).statusCode, 404, 'closed for both');
  const served = await second.parcels.openRead(digestOf(blob).slice(7));
  const chunks: Buffer[] = [];
  for await (const c of served) chunks.push(c as Buffer);
  t.same(Buffer.concat(chunks), blob, 'the whole blob, in order');
});

t.test('concurrent PATCHes at one offset, also on two replicas: exactly one is appended', async (t) => {
  const first = await makeTestApp(t);
  const second = await makeTestApp(t, { dir: first.dir });
  const location = await open(first);
  const parts = [blob.subarray(0, 50), blob.subarray(50, 100), blob.subarray(100, 150), blob.subarray(150, 200)];
  const replies = await Promise.all(parts.map((part, i) => patch(i % 2 === 0 ? first : second, location, part, '0-49')));
  const won = replies.filter((r) => r.statusCode === 202);
  t.equal(won.length, 1, 'one chunk wins the offset');
  t.same(replies.filter((r) => r.statusCode !== 202).map((r) => r.statusCode), [416, 416, 416], 'the others are 416');
  const winner = parts[replies.findIndex((r) => r.statusCode === 202)] ?? Buffer.alloc(0);
  const done = await close(second, location, digestOf(winner));
  t.equal(done.statusCode, 201, 'the session holds exactly the winning chunk');
});

t.test('a digest mismatch is DIGEST_INVALID, stores nothing and leaves the session usable', async (t) => {
  const ta = await makeTestApp(t);
  const location = await open(ta);
  t.equal((await patch(ta, location, blob.subarray(0, 100))).statusCode, 202);
  t.equal((await patch(ta, location, blob.subarray(100))).statusCode, 202);
  const wrong = await close(ta, location, digestOf('something else'));
  t.equal(wrong.statusCode, 400);
  t.equal(ociError(wrong.body).code, 'DIGEST_INVALID');
  t.notOk(await ta.parcels.has(digestOf('something else').slice(7)), 'nothing under the claimed digest');
  t.notOk(await ta.parcels.has(digestOf(blob).slice(7)), 'nor under the real one');
  const malformed = await close(ta, location, 'sha256:nothex');
  t.equal(malformed.statusCode, 400);
  t.equal(ociError(malformed.body).code, 'DIGEST_INVALID');
  const status = await ta.app.inject({ method: 'GET', url: location });
  t.equal(status.headers.range, `0-${blob.length - 1}`, 'the session is as it was');
  t.equal((await close(ta, location, digestOf(blob))).statusCode, 201, 'and closes with the right digest');
  const noDigest = await ta.app.inject({ method: 'PUT', url: await open(ta), payload: 'x' });
  t.equal(noDigest.statusCode, 400, 'a closing PUT without ?digest=');
  t.equal(ociError(noDigest.body).code, 'BLOB_UPLOAD_INVALID');
});

t.test('a closing PUT whose last chunk gives the wrong digest leaves the session without that chunk', async (t) => {
  const ta = await makeTestApp(t);
  const location = await open(ta);
  t.equal((await patch(ta, location, blob.subarray(0, 100), '0-99')).statusCode, 202);
  const wrong = await close(ta, location, digestOf('something else'), blob.subarray(100));
  t.equal(wrong.statusCode, 400);
  t.equal(ociError(wrong.body).code, 'DIGEST_INVALID');
  t.equal((await ta.app.inject({ method: 'GET', url: location })).headers.range, '0-99', 'the session is as it was before that PUT');
  const retried = await close(ta, location, digestOf(blob), blob.subarray(100));
  t.equal(retried.statusCode, 201, `the same PUT with the right digest closes it: ${retried.body}`);
  t.ok(await ta.parcels.has(digestOf(blob).slice(7)));
});

t.test('closing with the digest of a blob already stored: the bytes must still be that blob', async (t) => {
  const ta = await makeTestApp(t);
  const first = await open(ta);
  t.equal((await close(ta, first, digestOf(blob), blob)).statusCode, 201);
  const location = await open(ta);
  t.equal((await patch(ta, location, Buffer.from('abc'))).statusCode, 202);
  const wrong = await close(ta, location, digestOf(blob));
  t.equal(wrong.statusCode, 400, 'other bytes under a stored digest');
  t.equal(ociError(wrong.body).code, 'DIGEST_INVALID');
  t.match(ociError(wrong.body).message, /as it was/);
  t.equal((await ta.app.inject({ method: 'GET', url: location })).headers.range, '0-2', 'the session stays');
  const again = await open(ta);
  t.equal((await patch(ta, again, blob.subarray(0, 150))).statusCode, 202);
  t.equal((await close(ta, again, digestOf(blob), blob.subarray(150))).statusCode, 201, 'the same bytes again are accepted');
});

t.test('DELETE cancels; unknown sessions, other repositories and bad ranges are refused', async (t) => {
  const ta = await makeTestApp(t);
  const location = await open(ta);
  t.equal((await patch(ta, location, blob.subarray(0, 10))).statusCode, 202);
  const elsewhere = location.replace(NAME, OTHER);
  for (const [method, url] of [['GET', elsewhere], ['PATCH', elsewhere], ['PUT', `${elsewhere}?digest=${digestOf(blob)}`], ['DELETE', elsewhere]] as const) {
    const res = await ta.app.inject({ method, url, payload: method === 'PATCH' || method === 'PUT' ? 'x' : undefined });
    t.equal(res.statusCode, 404, `${method} in another repository`);
    t.equal(ociError(res.body).code, 'BLOB_UPLOAD_UNKNOWN');
  }
  const malformed = await patch(ta, location, blob.subarray(10, 20), 'ten-twenty');
  t.equal(malformed.statusCode, 400);
  t.equal(ociError(malformed.body).code, 'BLOB_UPLOAD_INVALID');
  t.equal((await patch(ta, location, blob.subarray(10, 20), '19-10')).statusCode, 416, 'a range ending before it starts');
  const short = await patch(ta, location, blob.subarray(10, 20), '10-29');
  t.equal(short.statusCode, 400, 'a body shorter than its Content-Range');
  t.equal((await ta.app.inject({ method: 'GET', url: location })).headers.range, '0-9', 'refused chunks change nothing');

  const cancelled = await ta.app.inject({ method: 'DELETE', url: location });
  t.equal(cancelled.statusCode, 204);
  for (const [method, url] of [['GET', location], ['PATCH', location], ['PUT', `${location}?digest=${digestOf(blob)}`], ['DELETE', location]] as const) {
    const res = await ta.app.inject({ method, url, payload: method === 'PATCH' || method === 'PUT' ? 'x' : undefined });
    t.equal(res.statusCode, 404, `${method} after cancel`);
    t.equal(ociError(res.body).code, 'BLOB_UPLOAD_UNKNOWN');
  }
  const unknown = await ta.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/uploads/00000000-0000-0000-0000-000000000000` });
  t.equal(unknown.statusCode, 404);
  t.equal(ociError(unknown.body).code, 'BLOB_UPLOAD_UNKNOWN');
});

t.test('a session may not grow past the blob limit, and an idle one is abandoned', async (t) => {
  const ta = await makeTestApp(t, { maxParcelBytes: 100 });
  const location = await open(ta);
  t.equal((await patch(ta, location, blob.subarray(0, 60))).statusCode, 202);
  const over = await patch(ta, location, blob.subarray(60, 160));
  t.equal(over.statusCode, 413);
  t.equal(ociError(over.body).code, 'SIZE_INVALID');
  t.equal((await ta.app.inject({ method: 'GET', url: location })).headers.range, '0-59');

  const uuid = location.split('/').at(-1) ?? '';
  const stored = await ta.index.ociUpload(uuid);
  t.ok(stored);
  if (stored === undefined) return;
  await ta.index.deleteOciUpload(uuid);
  await ta.index.createOciUpload({ ...stored, chunks: [], size: 0, updatedAt: Date.now() - 2 * 60 * 60 * 1000 }, 0);
  const idle = await ta.app.inject({ method: 'GET', url: location });
  t.equal(idle.statusCode, 404, 'idle longer than the staging max age (default 1 h)');
  t.equal(ociError(idle.body).code, 'BLOB_UPLOAD_UNKNOWN');
  t.equal(await ta.index.ociUpload(uuid), undefined, 'and removed');
});
