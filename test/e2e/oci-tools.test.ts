/**
 * A bindle through OCI tooling and back, with real processes: `bindle export --oci-layout` from
 * server A, `bindle push <layout>` into a fresh server B gives the same bindle (the creator's
 * signature and the parcels; B adds its own host signature); and through a real registry
 * (Debian's docker-registry): `skopeo copy oci:DIR:tag docker://…` and back into a new layout,
 * which `bindle push` takes into a fresh server C.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Invoice } from '../../schema/index.js';
import { BindleClient } from '../../client/lib/index.js';
import { buildBindleManifest } from '../../core/oci/index.js';
import { signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { cliRunner, exits, trustSetup, type TrustSetup } from '../helpers/cli-runner.js';
import { registrySkip, skopeo, startRegistry } from '../helpers/oci-registry.js';
import { CLI_BIN, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

if (!existsSync(CLI_BIN)) throw new Error(`build first (npm run build): ${CLI_BIN} is missing`);

// Several servers, a registry and a dozen CLI and skopeo processes on a slow, busy machine.
t.setTimeout(300_000);

const NAME = 'example.com/oci/tools';
const VERSION = '1.2.0+build.5';
const ID = `${NAME}/${VERSION}`;
const TAG = '1.2.0_build.5';
const PARCELS: TestParcel[] = [
  { name: 'app.wasm', data: Buffer.from('\0asm\x01\0\0\0'), mediaType: 'application/wasm' },
  { name: 'static/index.txt', data: Buffer.alloc(300_000, 'x') },
];

function client(t: Test, server: ServerProcess): BindleClient {
  const c = new BindleClient({ baseUrl: server.url, retries: 0 });
  t.teardown(() => c.close());
  return c;
}

/** A server trusting the test creator, with its own host key from `trust`. */
function server(t: Test, trust: TrustSetup): Promise<ServerProcess> {
  return startServerProcess(t, { args: [...trust.serverArgs, '--unauthenticated'] });
}

/** Publishes the test bindle to `s` and returns the stored invoice. */
async function publish(t: Test, s: ServerProcess): Promise<Invoice> {
  const c = client(t, s);
  const created = await c.createInvoice(signedInvoice(NAME, VERSION, PARCELS));
  for (const p of PARCELS) {
    const label = created.invoice.parcel?.find((x) => x.label.name === p.name)?.label;
    if (label !== undefined) await c.createParcel(ID, label, p.data);
  }
  return created.invoice;
}

/** The same bindle: same creator signature (byte for byte) and the same parcels, all downloadable. */
async function sameBindle(t: Test, s: ServerProcess, original: Invoice): Promise<void> {
  const c = client(t, s);
  const copy = await c.getInvoice(ID);
  const creator = (inv: Invoice): unknown => inv.signature?.filter((x) => x.role === 'creator');
  t.same(creator(copy), creator(original), 'the creator signature is unchanged');
  t.same(copy.parcel, original.parcel, 'the same parcels');
  for (const p of PARCELS) {
    const label = copy.parcel?.find((x) => x.label.name === p.name)?.label;
    if (label === undefined) throw new Error(`no parcel ${p.name}`);
    const chunks: Buffer[] = [];
    for await (const chunk of await c.getParcel(ID, label)) chunks.push(chunk as Buffer);
    t.same(Buffer.concat(chunks), p.data, `parcel ${p.name} is on the server`);
  }
}

t.test('export to an OCI layout from one server, push the layout into a fresh one', async (t) => {
  const dir = t.testdir();
  const trustA = trustSetup(join(dir, 'trust-a'));
  const trustB = trustSetup(join(dir, 'trust-b'));
  const [a, b] = await Promise.all([server(t, trustA), server(t, trustB)]);
  const original = await publish(t, a);
  const bindle = cliRunner(join(dir, 'home'));
  const layout = join(dir, 'layout');

  const exported = await bindle(['export', ID, '--oci-layout', layout, '--signatures', '-s', a.url, '-r', trustA.clientKeyringPath]);
  exits(t, exported, 0, 'export');
  const served = await fetch(`${a.url}_i/${ID}`, { headers: { accept: 'application/toml' } });
  const manifest = buildBindleManifest(Buffer.from(await served.arrayBuffer()), original);
  t.match(exported.stdout, `as tag ${TAG} (manifest ${manifest.digest}): 2 parcel(s) downloaded, 0 already there, 2 signature referrer(s)`);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  t.same(index.manifests[0]?.annotations, { 'org.opencontainers.image.ref.name': TAG });

  const untrusted = await bindle(['export', ID, '--oci-layout', join(dir, 'other'), '-s', a.url, '-r', trustB.clientKeyringPath]);
  exits(t, untrusted, 1, 'export with a keyring that does not trust the host');
  t.notOk(existsSync(join(dir, 'other')), 'nothing written for an invoice that did not verify');

  const pushed = await bindle(['push', layout, '-s', b.url]);
  exits(t, pushed, 0, 'push the layout');
  t.match(pushed.stdout, `Pushed bindle ${ID} to ${b.url}: invoice created, 2 parcel(s) uploaded`);
  await sameBindle(t, b, original);
  const again = await bindle(['push', layout, '-s', b.url]);
  exits(t, again, 0, 're-push');
  t.match(again.stdout, /no-op/);

  const notLayout = await bindle(['push', join(dir, 'trust-a'), '--tag', TAG, '-s', b.url]);
  exits(t, notLayout, 2, '--tag without a layout');
});

t.test('through a real registry with skopeo and back', { skip: registrySkip(t) }, async (t) => {
  const dir = t.testdir();
  const trustA = trustSetup(join(dir, 'trust-a'));
  const trustC = trustSetup(join(dir, 'trust-c'));
  const [a, c, registry] = await Promise.all([server(t, trustA), server(t, trustC), startRegistry(t)]);
  const original = await publish(t, a);
  const bindle = cliRunner(join(dir, 'home'));
  exits(t, await bindle(['export', ID, '--oci-layout', join(dir, 'layout'), '-s', a.url, '-r', trustA.clientKeyringPath]), 0, 'export');

  const image = `docker://${registry.host}/${NAME}:${TAG}`;
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${join(dir, 'layout')}:${TAG}`, image]);
  const raw = await skopeo(['inspect', '--tls-verify=false', '--raw', image]);
  const local = JSON.parse(readFileSync(join(dir, 'layout', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  t.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, local.manifests[0]?.digest, 'the registry keeps the manifest byte for byte');
  await skopeo(['copy', '--src-tls-verify=false', image, `oci:${join(dir, 'pulled')}`]);

  const pushed = await bindle(['push', join(dir, 'pulled'), '-s', c.url]);
  exits(t, pushed, 0, 'push the layout skopeo wrote');
  await sameBindle(t, c, original);
});
