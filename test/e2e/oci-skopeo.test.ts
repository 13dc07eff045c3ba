/**
 * Issue 14 with a real OCI client: Debian's `skopeo` pulls a bindle from the built bindle-server
 * over `/v2` (copy to a `dir:` layout with every blob's sha256 checked, the manifest digest stable
 * across two pulls and a yank, list-tags, inspect --raw), and pushes an OCI layout of a signed
 * bindle (client/standalone writeBindleLayout) into a fresh server, through upload sessions, where
 * the same bindle appears via /v1. Skipped with the reason when skopeo is
 * not installed, except under CI=true, where that fails (.ci/run installs it).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { BindleClient } from '../../client/lib/index.js';
import { writeBindleLayout } from '../../client/standalone/oci-layout.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice } from '../helpers/bindles.js';
import { OCI_MANIFEST_MEDIA_TYPE, type OciManifest } from '../../core/oci/index.js';
import { OWN_SET, vec } from '../helpers/paths.js';
import { pushBindle } from '../helpers/kubelet-env.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);
const NAME = 'example.com/oci/e2e';
const VERSION = '1.2.3+build.4';
const TAG = '1.2.3_build.4';
const parcels = [
  { name: 'module.wasm', data: Buffer.from('\0asm pretend module bytes'), mediaType: 'application/wasm' },
  { name: 'readme.txt', data: Buffer.from('read me\n'.repeat(1000)) },
];
const hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { timeout: 120_000, maxBuffer: 64 << 20 });
  return stdout;
}

async function skopeoMissing(): Promise<string | undefined> {
  try {
    await skopeo('--version');
    return undefined;
  } catch {
    return 'skopeo is not installed (apt-get install skopeo)';
  }
}

async function serverWithBindle(t: Test): Promise<{ server: ServerProcess; client: BindleClient; ref: string }> {
  const server = await startServerProcess(t, { args: ['--keyring', OWN_SET.path('scaffolds', 'keys', 'keyring.toml')] });
  const client = new BindleClient({ baseUrl: server.url, retries: 0 });
  t.teardown(() => client.close());
  await pushBindle(client, NAME, VERSION, parcels);
  return { server, client, ref: `docker://${new URL(server.origin).host}/${NAME}` };
}

const missing = await skopeoMissing();
if (missing !== undefined) {
  if (process.env.CI === 'true') t.fail(`CI needs skopeo: ${missing}`);
  else t.plan(0, missing);
} else {
  t.test('skopeo copies a bindle to dir: with every blob intact; the digest is stable across pulls and a yank', async (t) => {
    const { client, ref } = await serverWithBindle(t);
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `${ref}:${TAG}`);
    const digest = `sha256:${hex(Buffer.from(raw))}`;
    const manifest = JSON.parse(raw) as OciManifest;
    t.equal(manifest.mediaType, OCI_MANIFEST_MEDIA_TYPE);
    t.equal(manifest.layers.length, 2);

    for (const attempt of ['first', 'second']) {
      const dir = join(t.testdir(), attempt);
      await skopeo('copy', '--src-tls-verify=false', `${ref}:${TAG}`, `dir:${dir}`);
      const copied = readFileSync(join(dir, 'manifest.json'));
      t.equal(`sha256:${hex(copied)}`, digest, `${attempt} pull: the same manifest digest`);
      const files = readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f));
      const wanted = [manifest.config, ...manifest.layers].map((d) => d.digest.slice('sha256:'.length)).sort();
      t.same(files.sort(), wanted, 'the config and every layer');
      for (const file of files) t.equal(hex(readFileSync(join(dir, file))), file, `blob ${file} has its sha256`);
      t.same(readFileSync(join(dir, manifest.layers[1]?.digest.slice(7) ?? '')), parcels[1]?.data, 'a parcel, byte for byte');
    }

    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', ref)) as { Tags: string[] };
    t.same(tags.Tags, [TAG]);

    await client.yankInvoice(`${NAME}/${VERSION}`);
    const after = await skopeo('inspect', '--raw', '--tls-verify=false', `${ref}@${digest}`);
    t.equal(`sha256:${hex(Buffer.from(after))}`, digest, 'after the yank: the same manifest by digest');
    await t.rejects(skopeo('inspect', '--raw', '--tls-verify=false', `${ref}:${TAG}`), 'the tag is gone');
    const tagsAfter = JSON.parse(await skopeo('list-tags', '--tls-verify=false', ref)) as { Tags: string[] };
    t.same(tagsAfter.Tags, [], 'and no longer listed');
  });

  t.test('skopeo pushes an OCI layout of a signed bindle into a fresh server: the same bindle appears via /v1', async (t) => {
    const server = await startServerProcess(t, { args: ['--keyring', OWN_SET.path('scaffolds', 'keys', 'keyring.toml')] });
    const client = new BindleClient({ baseUrl: server.url, retries: 0 });
    t.teardown(() => client.close());
    const name = 'example.com/oci/pushed-e2e';
    const invoice = signedInvoice(name, VERSION, parcels);
    const configBytes = Buffer.from(renderInvoice(invoice));
    const layout = join(t.testdir(), 'layout');
    const report = await writeBindleLayout(layout, {
      configBytes,
      invoice,
      writeParcel: async (label, dest) => writeFile(dest, parcels.find((p) => hex(p.data) === label.sha256)?.data ?? Buffer.alloc(0)),
    });
    const ref = `docker://${new URL(server.origin).host}/${name}`;
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:${report.tag}`, `${ref}:${TAG}`);

    const stored = await client.getInvoice(`${name}/${VERSION}`);
    t.same(stored.signature?.map((s) => s.role), ['creator', 'host'], 'created as POST /_i makes it: verified and host-signed');
    for (const parcel of stored.parcel ?? []) {
      const chunks: Buffer[] = [];
      for await (const chunk of await client.getParcel(`${name}/${VERSION}`, parcel.label)) chunks.push(chunk as Buffer);
      t.same(Buffer.concat(chunks), parcels.find((p) => p.name === parcel.label.name)?.data, `parcel ${parcel.label.name}, byte for byte`);
    }
    t.equal(stored.parcel?.length, parcels.length, 'every parcel');
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `${ref}:${TAG}`);
    t.equal(`sha256:${hex(Buffer.from(raw))}`, report.manifest.digest, 'the pushed manifest, kept verbatim');
  });

  t.test('on a server with authentication, skopeo pulls anonymously, pushes with credentials, and pushes a pulled bindle back', async (t) => {
    const server = await startServerProcess(t, { args: ['--keyring', OWN_SET.path('scaffolds', 'keys', 'keyring.toml'), '--htpasswd-file', vec('data', 'htpasswd')] });
    const client = new BindleClient({ baseUrl: server.url, retries: 0, credentials: { kind: 'basic', user: 'admin', password: 'sw0rdf1sh' } });
    t.teardown(() => client.close());
    await pushBindle(client, NAME, VERSION, parcels);
    const ref = `docker://${new URL(server.origin).host}/${NAME}`;
    // With no credentials, containers/image answers the /v2/ challenge with empty Basic credentials: anonymous.
    const dir = join(t.testdir(), 'pulled');
    await skopeo('copy', '--src-tls-verify=false', `${ref}:${TAG}`, `oci:${dir}:t`);
    await t.rejects(skopeo('copy', '--dest-tls-verify=false', `oci:${dir}:t`, `${ref}:${TAG}`), 'an anonymous push is refused');
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', 'admin:sw0rdf1sh', `oci:${dir}:t`, `${ref}:${TAG}`);
    t.pass('the pulled bindle pushes back with credentials: the same manifest is accepted again');
  });
}
