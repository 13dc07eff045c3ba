import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import {
  BINDLE_ARTIFACT_TYPE,
  BINDLE_CONFIG_MEDIA_TYPE,
  BINDLE_SIGNATURE_ARTIFACT_TYPE,
  EMPTY_BLOB,
  EMPTY_DIGEST,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  buildBindleManifest,
  checkBindleManifest,
  descriptorOf,
  isBindleManifest,
  isOciName,
  isOciTag,
  parseManifest,
  renderIndex,
  sha256Digest,
  sha256Hex,
  signatureReferrers,
  tagToVersion,
  versionToTag,
  type OciManifest,
} from '../../core/oci/index.js';
import { OWN_SET } from '../helpers/paths.js';

const configBytes = readFileSync(OWN_SET.path('scaffolds', 'valid_v1', 'invoice.toml'));
const invoice = parseInvoice(configBytes.toString('utf8'));
const hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
function at<T>(list: readonly T[], i: number): T {
  const item = list[i];
  if (item === undefined) throw new Error(`no item ${i}`);
  return item;
}

t.test('OCI repository names follow the distribution-spec grammar', async (t) => {
  for (const good of ['a', 'enterprise.com/warpcore', 'a_b/c__d', 'x--y/z.0', 'a/b/c']) t.ok(isOciName(good), good);
  for (const bad of ['', 'A', 'Enterprise.com/x', 'a//b', '/a', 'a/', 'a..b', 'a___b', '-a', 'a-', 'käse', 'a b', 'a/_b']) {
    t.notOk(isOciName(bad), JSON.stringify(bad));
  }
  const longest = `${'a/'.repeat(255)}ab`;
  t.equal(longest.length, 512);
  t.ok(isOciName(longest), 'as long as a bindle name may be');
  t.notOk(isOciName(`${longest}c`), 'longer than any bindle name: no repository');
});

t.test('tags and versions map both ways with + <-> _', async (t) => {
  for (const version of ['1.0.0', '1.2.3-rc.1', '1.2.3+build.5', '0.1.0-alpha+sha.abc-def']) {
    const tag = versionToTag(version);
    t.ok(tag !== undefined && isOciTag(tag), `${version} has a tag`);
    t.notMatch(tag, /\+/);
    t.equal(tagToVersion(tag ?? ''), version, `${version} round-trips`);
  }
  t.equal(versionToTag('1.0.0+b'), '1.0.0_b');
  t.equal(versionToTag(`1.0.0-${'a'.repeat(130)}`), undefined, 'longer than 128 characters: no tag');
  for (const notVersion of ['latest', 'v1.0.0', '1.0', '', '1.0.0+a+b', '.1.0.0']) t.equal(tagToVersion(notVersion), undefined, notVersion);
  t.notOk(isOciTag('sha256:abc'), 'a digest is not a tag');
});

t.test('digests', async (t) => {
  t.equal(sha256Digest(EMPTY_BLOB), EMPTY_DIGEST, 'the empty descriptor digest is that of {}');
  t.equal(sha256Hex(`sha256:${'a'.repeat(64)}`), 'a'.repeat(64));
  t.equal(sha256Hex(`sha512:${'a'.repeat(128)}`), undefined);
  t.equal(sha256Hex(`sha256:${'A'.repeat(64)}`), undefined);
});

t.test('the bindle manifest: exact, deterministic bytes and their digest', async (t) => {
  const built = buildBindleManifest(configBytes, invoice);
  const expected =
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.bindle.invoice.v1",' +
    `"config":{"mediaType":"application/vnd.bindle.invoice.v1+toml","digest":"sha256:${hex(configBytes)}","size":${configBytes.length}},` +
    '"layers":[{"mediaType":"text/plain","digest":"sha256:23f310b54076878fd4c36f0c60ec92011a8b406349b98dd37d08577d17397de5","size":9,' +
    '"annotations":{"org.opencontainers.image.title":"isolinear_chip.txt"}}],' +
    '"annotations":{"engineering_location":"main","org.opencontainers.image.authors":"Bindle-TS Tests <tests@bindle-ts.test>",' +
    '"org.opencontainers.image.description":"Warp core components","org.opencontainers.image.title":"enterprise.com/warpcore",' +
    '"org.opencontainers.image.version":"1.0.0"}}';
  t.equal(built.bytes.toString('utf8'), expected);
  t.equal(built.digest, `sha256:${hex(built.bytes)}`);
  t.equal(built.size, built.bytes.length);
  t.equal(built.mediaType, OCI_MANIFEST_MEDIA_TYPE);
  t.same(buildBindleManifest(Buffer.from(configBytes), parseInvoice(configBytes.toString('utf8'))).bytes, built.bytes, 'same input, same bytes');
  const yanked = { ...invoice, yanked: true };
  t.equal(buildBindleManifest(configBytes, yanked).digest, built.digest, 'the yanked flag is not part of the manifest');
});

t.test('layers: one per parcel in invoice order, label annotations kept and sorted; empty descriptor without parcels', async (t) => {
  const parcels = ['b', 'a', 'c'].map((n, i) => ({
    label: { sha256: hex(Buffer.from(n)), mediaType: 'application/wasm', name: `${n}.wasm`, size: 1, ...(i === 1 ? { annotations: { zeta: '1', alpha: '2' } } : {}) },
  }));
  const inv = { ...invoice, parcel: parcels };
  const manifest = parseManifest(buildBindleManifest(configBytes, inv).bytes);
  t.same(manifest.layers.map((l) => l.annotations?.['org.opencontainers.image.title']), ['b.wasm', 'a.wasm', 'c.wasm']);
  t.same(Object.keys(manifest.layers[1]?.annotations ?? {}), ['alpha', 'org.opencontainers.image.title', 'zeta']);
  const overriding = { ...inv, parcel: [{ label: { ...at(parcels, 0).label, annotations: { 'org.opencontainers.image.title': 'x' } } }] };
  t.equal(parseManifest(buildBindleManifest(configBytes, overriding).bytes).layers[0]?.annotations?.['org.opencontainers.image.title'], 'b.wasm', 'the title is the label name');
  const { parcel: _dropped, ...none } = invoice;
  const empty = parseManifest(buildBindleManifest(configBytes, none).bytes);
  t.same(empty.layers, [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: 2 }]);
  t.equal(empty.config.mediaType, BINDLE_CONFIG_MEDIA_TYPE);
  t.equal(empty.artifactType, BINDLE_ARTIFACT_TYPE);
});

t.test('signature referrers: one per signature, subject the bindle manifest, deterministic', async (t) => {
  const built = buildBindleManifest(configBytes, invoice);
  const host = { by: 'host', signature: 'c2ln', key: 'a2V5', role: 'host' as const, at: 1764547300 };
  const signed = { ...invoice, signature: [...(invoice.signature ?? []), host] };
  const referrers = signatureReferrers(built, signed);
  t.equal(referrers.length, 2);
  const again = signatureReferrers(built, signed);
  t.same(again.map((r) => r.content.digest), referrers.map((r) => r.content.digest), 'deterministic');
  const last = parseManifest(at(referrers, 1).content.bytes);
  t.equal(last.artifactType, BINDLE_SIGNATURE_ARTIFACT_TYPE);
  t.same(last.subject, { mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: built.digest, size: built.size });
  t.same(last.annotations, {
    'io.bindle.signature.at': '1764547300',
    'io.bindle.signature.by': 'host',
    'io.bindle.signature.key': 'a2V5',
    'io.bindle.signature.role': 'host',
    'io.bindle.signature.signature': 'c2ln',
  });
  t.equal(at(referrers, 1).descriptor.digest, at(referrers, 1).content.digest);
  t.equal(at(referrers, 1).descriptor.artifactType, BINDLE_SIGNATURE_ARTIFACT_TYPE);
  t.equal(at(referrers, 0).descriptor.annotations?.['io.bindle.signature.role'], 'creator');
  const index = JSON.parse(renderIndex(referrers.map((r) => r.descriptor)).bytes.toString('utf8')) as { mediaType: string; manifests: unknown[] };
  t.equal(index.mediaType, OCI_INDEX_MEDIA_TYPE);
  t.equal(index.manifests.length, 2);
  t.same(descriptorOf(built), { mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: built.digest, size: built.size });
});

t.test('parseManifest checks the shape and refuses other manifest kinds', async (t) => {
  const built = buildBindleManifest(configBytes, invoice);
  const parsed = parseManifest(built.bytes, OCI_MANIFEST_MEDIA_TYPE);
  t.ok(isBindleManifest(parsed));
  const json = JSON.parse(built.bytes.toString('utf8')) as Record<string, unknown>;
  const variant = (patch: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify({ ...json, ...patch }));
  const cases: Array<[string, Buffer, string | undefined, string, RegExp]> = [
    ['not JSON', Buffer.from('{'), undefined, 'manifest_invalid', /not JSON/],
    ['not UTF-8', Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff]), Buffer.from('"}')]), undefined, 'manifest_invalid', /not valid UTF-8/],
    ['a lone surrogate', Buffer.from('{"a":"\\ud800"}'), undefined, 'manifest_invalid', /surrogate/],
    ['an array', Buffer.from('[]'), undefined, 'manifest_invalid', /JSON object/],
    ['an index', variant({ mediaType: OCI_INDEX_MEDIA_TYPE }), undefined, 'unsupported', /bindles only/],
    ['docker v2', Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] })), 'application/vnd.docker.distribution.manifest.v2+json', 'unsupported', /bindles only/],
    ['schemaVersion 1', variant({ schemaVersion: 1 }), undefined, 'manifest_invalid', /schemaVersion/],
    ['Content-Type disagrees', built.bytes, 'application/json', 'manifest_invalid', /differs/],
    ['no layers', variant({ layers: undefined }), undefined, 'manifest_invalid', /layers must be an array/],
    ['bad digest', variant({ config: { mediaType: 'x/y', digest: 'nope', size: 1 } }), undefined, 'manifest_invalid', /config.digest/],
    ['negative size', variant({ layers: [{ mediaType: 'x/y', digest: EMPTY_DIGEST, size: -1 }] }), undefined, 'manifest_invalid', /layers\[0\].size/],
    ['bad annotations', variant({ annotations: { a: 1 } }), undefined, 'manifest_invalid', /annotations/],
  ];
  for (const [what, bytes, type, code, message] of cases) t.throws(() => parseManifest(bytes, type), { code, message }, what);
});

t.test('checkBindleManifest: layers must be exactly the invoice parcels', async (t) => {
  const base = parseManifest(buildBindleManifest(configBytes, invoice).bytes);
  t.doesNotThrow(() => checkBindleManifest(base, configBytes, invoice));
  const layer = at(base.layers, 0);
  const cases: Array<[string, OciManifest, string, RegExp]> = [
    ['not a bindle', { ...base, artifactType: 'application/vnd.example', config: { ...base.config, mediaType: 'application/json' } }, 'unsupported', /bindles only/],
    ['wrong artifactType', { ...base, artifactType: 'application/vnd.example' }, 'manifest_invalid', /artifactType/],
    ['wrong config media type', { ...base, config: { ...base.config, mediaType: 'application/toml' } }, 'manifest_invalid', /config.mediaType/],
    ['config of other bytes', { ...base, config: { ...base.config, digest: EMPTY_DIGEST } }, 'manifest_invalid', /config descriptor/],
    ['a layer missing', { ...base, layers: [] }, 'manifest_invalid', /1 parcels but the manifest has 0 layers/],
    ['an extra layer', { ...base, layers: [layer, layer] }, 'manifest_invalid', /2 layers/],
    ['wrong size', { ...base, layers: [{ ...layer, size: 10 }] }, 'manifest_invalid', /layers\[0\]/],
    ['wrong media type', { ...base, layers: [{ ...layer, mediaType: 'application/octet-stream' }] }, 'manifest_invalid', /layers\[0\]/],
  ];
  for (const [what, manifest, code, message] of cases) t.throws(() => checkBindleManifest(manifest, configBytes, invoice), { code, message }, what);
  const { parcel: _dropped, ...none } = invoice;
  t.doesNotThrow(() => checkBindleManifest({ ...base, layers: [] }, configBytes, none), 'no parcels: no layers is fine too');
  t.throws(() => checkBindleManifest(base, configBytes, none), { code: 'manifest_invalid', message: /empty descriptor/ });
});
