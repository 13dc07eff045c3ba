/**
 * `bindle-kubelet` runs modules from an OCI registry, with real processes: a signed bindle and a
 * plain Wasm image are copied with skopeo into Debian's docker-registry (htpasswd Basic auth;
 * the kubelet reads the credentials from a registry auth file), then static pods name them as
 * `<registry>/<repository>:<tag>`: the signed bindle runs (verified against the kubelet's
 * keyring); the unsigned image is refused without the pod's opt-in and runs with it; a bindle
 * signed by an unknown key is refused.
 */
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { EMPTY_BLOB, EMPTY_DESCRIPTOR, renderManifest, sha256Digest } from '../../core/oci/index.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import { podLogText } from '../../client/kubelet/pod-log.js';
import type { PodStatus } from '../../client/kubelet/pod-status.js';
import { blobPath, writeBindleLayout } from '../../client/standalone/oci-layout.js';
import { buildWasmFixtures } from '../../scripts/build-wasm-fixtures.js';
import { creatorKey, sha256, signedInvoice } from '../helpers/bindles.js';
import { registrySkip, skopeo, startRegistry } from '../helpers/oci-registry.js';
import { dropPod, finalPodStatus, startKubelet } from '../helpers/static-pods.js';
import { vec } from '../helpers/paths.js';
import { KUBELET_BIN } from '../helpers/server-process.js';

if (!existsSync(KUBELET_BIN)) throw new Error(`build first (npm run build): ${KUBELET_BIN} is missing`);

t.setTimeout(300_000);

/** The htpasswd fixture's user (bcrypt entry in fixtures/vectors/data/htpasswd). */
const USER = 'admin';
const PASSWORD = 'sw0rdf1sh';

/** Writes a one-layer Wasm image (not a bindle) into a new OCI layout, tagged `tag`. */
function plainWasmLayout(dir: string, module: Buffer, tag: string): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(blobPath(dir, sha256Digest(module)), module);
  writeFileSync(blobPath(dir, EMPTY_DESCRIPTOR.digest), EMPTY_BLOB);
  const manifest = renderManifest({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.wasm.content.layer.v1+wasm',
    config: EMPTY_DESCRIPTOR,
    layers: [{ mediaType: 'application/wasm', digest: sha256Digest(module), size: module.length, annotations: { 'org.opencontainers.image.title': 'hello.wasm' } }],
  });
  writeFileSync(blobPath(dir, manifest.digest), manifest.bytes);
  const entry = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size, annotations: { 'org.opencontainers.image.ref.name': tag } };
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
}

/** Writes a bindle holding `module` as its one parcel into a new OCI layout; signed by `key` (default the test creator). */
async function bindleLayout(dir: string, name: string, version: string, module: Buffer, key = creatorKey()): Promise<void> {
  const invoice = signedInvoice(name, version, [{ name: 'hello.wasm', data: module, mediaType: 'application/wasm' }], { key });
  await writeBindleLayout(dir, {
    invoice,
    configBytes: Buffer.from(renderInvoice(invoice, 'toml'), 'utf8'),
    writeParcel: async (label, dest) => {
      mkdirSync(join(dest, '..'), { recursive: true });
      writeFileSync(dest, module);
      if (sha256(module) !== label.sha256) throw new Error('not the module');
    },
  });
}

t.test('the kubelet runs signed bindles from an OCI registry, and unsigned Wasm only when the pod allows it', { skip: registrySkip(t) }, async (t) => {
  const root = t.testdir({ manifests: {}, state: {}, cache: {}, layouts: {} });
  const registry = await startRegistry(t, { htpasswd: vec('data', 'htpasswd') });
  const modules = await buildWasmFixtures(join(root, 'wasm'));
  const hello = readFileSync(modules.get('hello') ?? '');
  const creds = `--dest-creds=${USER}:${PASSWORD}`;
  const copy = async (layout: string, tag: string, repository: string): Promise<string> => {
    await skopeo(['copy', '--dest-tls-verify=false', creds, `oci:${layout}:${tag}`, `docker://${registry.host}/${repository}:${tag}`]);
    return `${registry.host}/${repository}:${tag}`;
  };
  await bindleLayout(join(root, 'layouts', 'signed'), 'example.com/oci/hello', '1.0.0', hello);
  await bindleLayout(join(root, 'layouts', 'stranger'), 'example.com/oci/stranger', '1.0.0', hello, createSecretKey('Stranger <s@example.com>', ['creator']));
  plainWasmLayout(join(root, 'layouts', 'plain'), hello, 'v1');
  const signed = await copy(join(root, 'layouts', 'signed'), '1.0.0', 'example.com/oci/hello');
  const stranger = await copy(join(root, 'layouts', 'stranger'), '1.0.0', 'example.com/oci/stranger');
  const plain = await copy(join(root, 'layouts', 'plain'), 'v1', 'example.com/oci/plain');

  const keyring = join(root, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creatorKey())] }));
  const authFile = join(root, 'auth.json');
  writeFileSync(authFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  const daemon = startKubelet(t, [
    '--pod-manifest-path', join(root, 'manifests'),
    '--state-dir', join(root, 'state'),
    '--cache-dir', join(root, 'cache'),
    '--keyring', keyring,
    '--server', 'http://127.0.0.1:9/v1/',
    '--insecure-registry', registry.host,
    '--registry-auth-file', authFile,
    '--poll-interval', '100',
    '--backoff-base', '50',
  ]);

  const drop = (pod: string, image: string, annotations: Record<string, string> = {}): void => dropPod(join(root, 'manifests'), pod, image, 'Never', annotations);
  const status = (pod: string): Promise<PodStatus> => finalPodStatus(join(root, 'state'), pod, daemon.log);
  const podLog = (pod: string): string => podLogText(readFileSync(join(root, 'state', 'pods', pod, 'main.log'), 'utf8'), 'stdout');

  drop('signed', signed);
  t.match(await status('signed'), { phase: 'Succeeded', containerStatuses: [{ imageID: 'example.com/oci/hello/1.0.0', state: { terminated: { exitCode: 0 } } }] }, 'the signed bindle ran');
  t.equal(podLog('signed'), 'Hello from a bindle!\n');

  drop('unsigned-refused', plain);
  t.match(await status('unsigned-refused'), { phase: 'Failed', reason: 'ModuleRefused', message: /unsigned Wasm image.*bindle\.dev\/allow-unsigned-images: "true" \(bindle-kubelet run: only with --allow-unsigned\)/ });

  drop('unsigned-allowed', plain, { 'bindle.dev/allow-unsigned-images': 'true' });
  const allowed = await status('unsigned-allowed');
  t.match(allowed, { phase: 'Succeeded', containerStatuses: [{ imageID: new RegExp(`^${registry.host.replace(/\./g, '\\.')}/example\\.com/oci/plain@sha256:[0-9a-f]{64}$`) }] });
  t.equal(podLog('unsigned-allowed'), 'Hello from a bindle!\n');
  t.match(daemon.log(), /module .*"hello\.wasm" ready; fetched 0 parcels, 1 from the cache/, 'the same module bytes come from the cache');

  drop('stranger', stranger, { 'bindle.dev/allow-unsigned-images': 'true' });
  t.match(await status('stranger'), { phase: 'Failed', reason: 'ModuleRefused', message: /failed verification/ }, 'the opt-in never lets an untrusted bindle through');
});
