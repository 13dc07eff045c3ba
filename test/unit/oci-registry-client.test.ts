/**
 * The OCI pull client (client/lib/oci-registry-client.ts) against a small registry peer on
 * 127.0.0.1 that demands a bearer token from its own token realm (the docker-registry e2e test
 * covers Basic): the challenge is answered with the configured credentials, the token is reused
 * per scope, manifests and blobs are checked against their digests, and the registry's errors
 * come back with its message. Also the challenge parser and the registry auth file.
 */
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EMPTY_DESCRIPTOR, renderManifest, sha256Digest } from '../../core/oci/index.js';
import { OciRegistryClient, parseChallenge } from '../../client/lib/oci-registry-client.js';
import { parseRegistryAuth } from '../../client/kubelet/registry-access.js';
import { serveLocally } from '../helpers/local-server.js';

const MODULE = Buffer.from('\0asm\x01\0\0\0');
const MANIFEST = renderManifest({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: EMPTY_DESCRIPTOR,
  layers: [{ mediaType: 'application/wasm', digest: sha256Digest(MODULE), size: MODULE.length }],
});
const BASIC = `Basic ${Buffer.from('puller:secret').toString('base64')}`;

/** A registry that wants `Bearer good-token` for repository `example/app`, handed out by /token to `puller:secret`. */
async function registry(t: Test): Promise<{ host: string; requests: string[]; corrupt: { blob: boolean } }> {
  const requests: string[] = [];
  const corrupt = { blob: false };
  let origin = '';
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', origin);
    requests.push(`${req.method ?? ''} ${url.pathname}${url.search} ${req.headers.authorization ?? '-'}`);
    if (url.pathname === '/token') {
      const ok = req.headers.authorization === BASIC && url.searchParams.get('scope') === 'repository:example/app:pull' && url.searchParams.get('service') === 'test-registry';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { token: 'good-token' } : { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      return;
    }
    if (req.headers.authorization !== 'Bearer good-token') {
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${origin}/token",service="test-registry",scope="repository:example/app:pull"`,
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (url.pathname === '/v2/example/app/manifests/1.0') {
      res.writeHead(200, { 'content-type': MANIFEST.mediaType, 'docker-content-digest': MANIFEST.digest });
      res.end(MANIFEST.bytes);
    } else if (url.pathname === `/v2/example/app/blobs/${sha256Digest(MODULE)}`) {
      res.writeHead(307, { location: `${origin}/storage/module` });
      res.end();
    } else if (url.pathname === '/storage/module') {
      res.writeHead(200);
      res.end(corrupt.blob ? Buffer.from('\0asm\x01\0\0\x01') : MODULE);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    }
  };
  origin = await serveLocally(t, handler);
  return { host: origin.replace('http://', ''), requests, corrupt };
}

t.test('bearer challenge, token reuse, redirects and digest checks', async (t) => {
  const reg = await registry(t);
  const client = new OciRegistryClient({ registry: reg.host, insecure: true, credentials: { user: 'puller', password: 'secret' }, timeoutMs: 10_000 });
  t.teardown(() => client.close());
  const pulled = await client.getManifest('example/app', '1.0');
  t.equal(pulled.digest, MANIFEST.digest);
  t.same(pulled.manifest.layers[0]?.digest, sha256Digest(MODULE));
  const dir = t.testdir();
  const label = { sha256: sha256Digest(MODULE).slice(7), size: MODULE.length, mediaType: 'application/wasm', name: 'module.wasm' };
  await client.downloadBlob('example/app', label, join(dir, 'module'), 0o444);
  t.same(await readFile(join(dir, 'module')), MODULE, 'the blob, through the redirect');
  t.same(
    reg.requests.filter((r) => r.includes('/token')).length,
    1,
    'one token for the scope, reused for the blob',
  );
  t.ok(reg.requests.some((r) => r.endsWith('Bearer good-token') && r.includes('/manifests/1.0')));

  reg.corrupt.blob = true;
  await t.rejects(client.downloadBlob('example/app', label, join(dir, 'corrupt'), 0o444), { code: 'digest_mismatch' });
  await t.rejects(readFile(join(dir, 'corrupt')), { code: 'ENOENT' }, 'nothing is left of a blob that did not match');
  await t.rejects(client.getManifest('example/app', '2.0'), { code: 'not_found', message: /MANIFEST_UNKNOWN: manifest unknown/ });
  await t.rejects(client.getManifest('Example/App', '1.0'), { code: 'invalid_name' });
  await t.rejects(client.getManifest('example/app', `sha256:${'0'.repeat(64)}`), { code: 'not_found' });
});

t.test('wrong or missing credentials are refused with the reason', async (t) => {
  const reg = await registry(t);
  const wrong = new OciRegistryClient({ registry: reg.host, insecure: true, credentials: { user: 'puller', password: 'nope' }, timeoutMs: 10_000 });
  const anonymous = new OciRegistryClient({ registry: reg.host, insecure: true, timeoutMs: 10_000 });
  t.teardown(async () => {
    await wrong.close();
    await anonymous.close();
  });
  await t.rejects(wrong.getManifest('example/app', '1.0'), { code: 'unauthenticated', message: /token service .* answered HTTP 401: UNAUTHORIZED: bad credentials/ });
  await t.rejects(anonymous.getManifest('example/app', '1.0'), { code: 'unauthenticated' });
});

t.test('WWW-Authenticate challenges', async (t) => {
  t.same(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
    scheme: 'bearer',
    realm: 'https://auth.example/token',
    service: 'registry.example',
    scope: 'repository:a/b:pull',
  });
  t.same(parseChallenge('bearer realm=https://auth.example/token'), { scheme: 'bearer', realm: 'https://auth.example/token' });
  t.same(parseChallenge('Basic realm="registry"'), { scheme: 'basic' });
  t.equal(parseChallenge('Bearer service="x"'), undefined, 'a bearer challenge without a realm');
  t.equal(parseChallenge('Negotiate'), undefined);
  t.equal(parseChallenge(undefined), undefined);
});

t.test('registry auth files', async (t) => {
  const auth = parseRegistryAuth(
    JSON.stringify({
      auths: {
        'ghcr.io': { auth: Buffer.from('me:p:w').toString('base64') },
        'https://127.0.0.1:5000/v2/': { username: 'u', password: 'p' },
        'empty.example': {},
      },
    }),
    'auth.json',
  );
  t.same([...auth], [
    ['ghcr.io', { user: 'me', password: 'p:w' }],
    ['127.0.0.1:5000', { user: 'u', password: 'p' }],
  ]);
  t.throws(() => parseRegistryAuth('{', 'auth.json'), { code: 'invalid_config', message: /auth\.json is not JSON/ });
  t.throws(() => parseRegistryAuth('{"auths":[]}', 'auth.json'), { code: 'invalid_config' });
});
