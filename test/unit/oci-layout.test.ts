/**
 * Bindles as OCI image layouts (client/standalone/oci-layout.ts): write/read round trip (the
 * manifest is core/oci's, the config the invoice's exact bytes, index.json tags it), adding to an
 * existing layout, re-writing only what is missing or corrupt, the signature referrers, and
 * every way a layout is refused when read.
 */
import t from 'tap';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Label } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { BINDLE_SIGNATURE_ARTIFACT_TYPE, EMPTY_DIGEST, buildBindleManifest, sha256Digest } from '../../core/oci/index.js';
import {
  blobPath,
  isOciLayout,
  readLayoutBindle,
  REF_NAME_ANNOTATION,
  writeBindleLayout,
  type BindleLayoutSource,
} from '../../client/standalone/oci-layout.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';

interface IndexJson {
  schemaVersion: number;
  manifests: Array<{ mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }>;
}

const PARCELS: TestParcel[] = [
  { name: 'app.wasm', data: Buffer.from('\0asm\x01\0\0\0'), mediaType: 'application/wasm' },
  { name: 'data/config.toml', data: Buffer.from('x = 1\n'), mediaType: 'application/toml' },
];

/** A layout source for `parcels`' invoice, whose writeParcel copies the bytes and counts its calls. */
function source(name: string, version: string, parcels: readonly TestParcel[], signatures = false): BindleLayoutSource & { calls: string[] } {
  const invoice = signedInvoice(name, version, parcels);
  const bytes = new Map(parcels.map((p) => [sha256(p.data), p.data]));
  const calls: string[] = [];
  return {
    invoice,
    configBytes: Buffer.from(renderInvoice(invoice, 'toml'), 'utf8'),
    signatures,
    calls,
    async writeParcel(label: Label, dest: string): Promise<void> {
      calls.push(label.sha256);
      await mkdir(join(dest, '..'), { recursive: true });
      await writeFile(dest, bytes.get(label.sha256) ?? Buffer.alloc(0));
    },
  };
}

async function indexOf(dir: string): Promise<IndexJson> {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as IndexJson;
}

t.test('write then read: the manifest, config, layers and tag round trip', async (t) => {
  const dir = join(t.testdir(), 'layout');
  const src = source('example.com/oci/app', '1.0.0+build.7', PARCELS);
  const report = await writeBindleLayout(dir, src);
  t.equal(report.tag, '1.0.0_build.7', '+ becomes _ in the tag');
  t.same(report.written, PARCELS.map((p) => sha256(p.data)).sort());
  t.ok(await isOciLayout(dir));
  t.same(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const expected = buildBindleManifest(src.configBytes, src.invoice);
  t.equal(report.manifest.digest, expected.digest, 'the manifest is core/oci\'s');
  t.same(await readFile(blobPath(dir, expected.digest)), expected.bytes);
  t.same(await readFile(blobPath(dir, sha256Digest(src.configBytes))), src.configBytes, 'the config blob is the invoice bytes');
  const index = await indexOf(dir);
  t.equal(index.schemaVersion, 2);
  t.same(index.manifests, [
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: expected.digest,
      size: expected.size,
      artifactType: 'application/vnd.bindle.invoice.v1',
      annotations: { [REF_NAME_ANNOTATION]: '1.0.0_build.7' },
    },
  ]);

  const read = await readLayoutBindle(dir);
  t.same(read.invoice, src.invoice);
  t.equal(read.tag, '1.0.0_build.7');
  t.equal(read.manifestDigest, expected.digest);
  t.same([...read.parcels.keys()].sort(), PARCELS.map((p) => sha256(p.data)).sort());
  for (const p of PARCELS) t.same(await readFile(read.parcels.get(sha256(p.data)) ?? ''), p.data, p.name);
});

t.test('an existing layout gains a bindle; intact blobs are not written again, corrupt ones are', async (t) => {
  const dir = join(t.testdir(), 'layout');
  const first = source('example.com/oci/app', '1.0.0', PARCELS);
  await writeBindleLayout(dir, first);
  const second = source('example.com/oci/app', '1.1.0', [...PARCELS, { name: 'more.txt', data: Buffer.from('more') }]);
  await writeFile(blobPath(dir, `sha256:${sha256(PARCELS[0]?.data ?? '')}`), 'corrupt');
  const report = await writeBindleLayout(dir, second);
  t.same(report.present, [sha256(PARCELS[1]?.data ?? '')], 'the intact parcel is kept');
  t.same(second.calls.sort(), [sha256(PARCELS[0]?.data ?? ''), sha256('more')].sort(), 'the corrupt and the new parcel are written');
  const tags = (await indexOf(dir)).manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]);
  t.same(tags, ['1.0.0', '1.1.0']);
  await t.rejects(readLayoutBindle(dir), { code: 'bad_request', message: /holds 2 bindles \(1\.0\.0, 1\.1\.0\).*--tag/ });
  t.equal((await readLayoutBindle(dir, '1.1.0')).invoice.bindle.version, '1.1.0');
  await t.rejects(readLayoutBindle(dir, '2.0.0'), { code: 'not_found', message: /no bindle tagged "2\.0\.0"/ });

  const again = source('example.com/oci/app', '1.1.0', [...PARCELS, { name: 'more.txt', data: Buffer.from('more') }]);
  await writeBindleLayout(dir, again);
  t.same(again.calls, [], 'a second export of the same bindle writes no parcel');
  t.equal((await indexOf(dir)).manifests.length, 2, 'the tag is replaced, not repeated');
});

t.test('a bindle without parcels gets the empty layer; signatures become referrers', async (t) => {
  const dir = join(t.testdir(), 'layout');
  const src = source('example.com/oci/empty', '0.1.0', [], true);
  const report = await writeBindleLayout(dir, src);
  const manifest = JSON.parse(report.manifest.bytes.toString('utf8')) as { layers: Array<{ digest: string }> };
  t.same(manifest.layers.map((l) => l.digest), [EMPTY_DIGEST]);
  t.same(await readFile(blobPath(dir, EMPTY_DIGEST), 'utf8'), '{}');
  t.equal(report.referrers.length, 1, 'one referrer per signature');
  const entries = (await indexOf(dir)).manifests;
  t.same(entries.map((e) => e.artifactType), ['application/vnd.bindle.invoice.v1', BINDLE_SIGNATURE_ARTIFACT_TYPE]);
  const referrer = JSON.parse(await readFile(blobPath(dir, report.referrers[0] ?? ''), 'utf8')) as { subject: { digest: string } };
  t.equal(referrer.subject.digest, report.manifest.digest, 'the referrer points at the bindle manifest');
  const read = await readLayoutBindle(dir);
  t.equal(read.parcels.size, 0);
  t.equal(read.invoice.bindle.name, 'example.com/oci/empty', 'the referrers are not mistaken for bindles');
});

t.test('writing refuses a non-empty directory that is not a layout', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'mine' });
  await t.rejects(writeBindleLayout(dir, source('example.com/x', '1.0.0', PARCELS)), { code: 'already_exists', message: /neither empty nor an OCI image layout/ });
  t.same(await readFile(join(dir, 'notes.txt'), 'utf8'), 'mine');
});

t.test('reading refuses layouts that are not a bindle, or whose blobs do not match', async (t) => {
  const root = t.testdir();
  const plain = join(root, 'plain');
  await mkdir(join(plain, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(plain, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const wasm = Buffer.from('\0asm\x01\0\0\0');
  await writeFile(blobPath(plain, sha256Digest(wasm)), wasm);
  await writeFile(blobPath(plain, EMPTY_DIGEST), '{}');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.wasm.config.v0+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: 2 },
      layers: [{ mediaType: 'application/wasm', digest: sha256Digest(wasm), size: wasm.length }],
    }),
  );
  await writeFile(blobPath(plain, sha256Digest(manifest)), manifest);
  await writeFile(
    join(plain, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest(manifest), size: manifest.length }] }),
  );
  await t.rejects(readLayoutBindle(plain), { code: 'unsupported', message: /holds no bindle .*artifactType application\/vnd\.wasm\.config\.v0\+json/ });

  await writeFile(join(plain, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
  await t.rejects(readLayoutBindle(plain), { code: 'unsupported', message: /imageLayoutVersion/ });

  const dir = join(root, 'bindle');
  const src = source('example.com/oci/app', '1.0.0', PARCELS);
  const { manifest: bindleManifest } = await writeBindleLayout(dir, src);
  await writeFile(blobPath(dir, `sha256:${sha256(PARCELS[1]?.data ?? '')}`), 'x = 2\n');
  await t.rejects(readLayoutBindle(dir), { code: 'digest_mismatch' }, 'a parcel blob with other bytes');
  await writeFile(blobPath(dir, bindleManifest.digest), Buffer.concat([bindleManifest.bytes, Buffer.from(' ')]));
  await t.rejects(readLayoutBindle(dir), { code: 'size_mismatch' }, 'a manifest blob with other bytes');
  await writeFile(join(dir, 'index.json'), '{"schemaVersion":2}');
  await t.rejects(readLayoutBindle(dir), { code: 'malformed_body', message: /not an OCI image index/ });
  await t.rejects(readLayoutBindle(join(root, 'missing')), { code: 'not_found' });
});

t.test('a config that is not an invoice, and one that does not match its manifest, are refused', async (t) => {
  const dir = join(t.testdir(), 'layout');
  const src = source('example.com/oci/app', '1.0.0', PARCELS);
  await writeBindleLayout(dir, { ...src, configBytes: Buffer.from('not = [toml', 'utf8') });
  await t.rejects(readLayoutBindle(dir), { message: /the config of bindle manifest .* is not a valid invoice/ });
  const other = signedInvoice('example.com/oci/app', '1.0.0', PARCELS.slice(0, 1));
  const dir2 = join(t.testdir(), 'layout2');
  await writeBindleLayout(dir2, { ...src, configBytes: Buffer.from(renderInvoice(other, 'toml'), 'utf8') });
  await t.rejects(readLayoutBindle(dir2), { code: 'manifest_invalid' }, 'layers that are not the invoice\'s parcels');
});
