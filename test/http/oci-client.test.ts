/**
 * Issue 14: a maintained npm OCI client (@snyk/docker-registry-v2-client) pulls a bindle from a
 * listening server over `/v2`: the version check, tags, the manifest and every blob, with the
 * digests it computes checked against ours.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { checkSupport, getLayer, getManifest, getTags, getTagsPaginated } from '@snyk/docker-registry-v2-client';
import { OCI_MANIFEST_MEDIA_TYPE } from '../../core/oci/index.js';
import { listenTestApp } from '../helpers/test-app.js';
import { pushThroughV1 } from '../helpers/oci.js';

const NAME = 'example.com/oci/client';
const parcels = [{ name: 'one.txt', data: Buffer.from('one') }, { name: 'two.wasm', data: Buffer.from('two two'), mediaType: 'application/wasm' }];
const digestOf = (data: string | Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

t.test('@snyk/docker-registry-v2-client pulls a bindle', async (t) => {
  const server = await listenTestApp(t);
  const toml = await pushThroughV1(server, NAME, '1.0.0', parcels);
  for (const version of ['1.1.0', '2.0.0+meta']) await pushThroughV1(server, NAME, version, []);
  const registry = new URL(server.url).host;
  const options = { protocol: 'http:', acceptManifest: OCI_MANIFEST_MEDIA_TYPE, timeout: 60_000 };

  t.ok(await checkSupport(registry, undefined, undefined, options), 'the version check');
  t.same(await getTags(registry, NAME, undefined, undefined, 2, 10, options), ['1.0.0', '1.1.0', '2.0.0_meta'], 'tags, paged with Link');
  t.same(await getTagsPaginated(registry, NAME, undefined, undefined, 1, options), ['1.0.0', '1.1.0', '2.0.0_meta'], 'tags, paged with last');

  const manifest = await getManifest(registry, NAME, '1.0.0', undefined, undefined, options);
  t.equal(manifest.mediaType, OCI_MANIFEST_MEDIA_TYPE);
  t.equal(manifest.config.digest, digestOf(toml));
  t.same(manifest.layers.map((l) => l.digest), parcels.map((p) => digestOf(p.data)));
  const clientDigest = manifest.manifestDigest ?? manifest.indexDigest;
  t.equal(clientDigest, (await server.index.ociManifest(NAME, '1.0.0'))?.digest, 'the digest the client computed is the stored one');
  const byDigest = await getManifest(registry, NAME, clientDigest ?? '', undefined, undefined, options);
  t.same(byDigest.layers, manifest.layers, 'the same manifest by the digest the client computed');
  for (const [digest, data] of [[manifest.config.digest, Buffer.from(toml)], ...parcels.map((p) => [digestOf(p.data), p.data] as const)] as const) {
    const blob = await getLayer(registry, NAME, digest, undefined, undefined, options);
    t.same(blob, data, `blob ${digest}`);
  }
});
