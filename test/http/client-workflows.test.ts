/**
 * The push and fetch workflows against a real listening server: the reference standalone bindle
 * (directory and tarball), only-missing uploads, idempotent re-push, a different release under
 * the same id, and fetching into the local cache (verified, re-hashed, cached parcels kept).
 */
import t, { type Test } from 'tap';
import type { AddressInfo } from 'node:net';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Invoice } from '../../schema/index.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import { DirectorySync } from '../../core/fs-atomic.js';
import { Keyring } from '../../core/signing/keyring.js';
import { signInvoice } from '../../core/signing/sign.js';
import {
  BindleClient, fetchBindle, pushStandalone, readStandalone, writeStandalone, type TransferEvent,
} from '../../client/lib/index.js';
import { loadScaffold, creatorKey, creatorKeyring, sha256, signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { makeTestApp } from '../helpers/test-app.js';

const WARPCORE = '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd';
const CHIP = '23f310b54076878fd4c36f0c60ec92011a8b406349b98dd37d08577d17397de5';

/** A listening server (trusting the reference creator) and a client trusting it and its host key. */
async function setup(t: Test, concurrency?: number): Promise<BindleClient> {
  const ta = await makeTestApp(t);
  await ta.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = ta.app.server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}/v1/`;
  const probe = new BindleClient({ baseUrl });
  const hostKeys = new Keyring(await probe.getHostKeys());
  await probe.close();
  const client = new BindleClient({ baseUrl, keyring: creatorKeyring().merge(hostKeys), ...(concurrency !== undefined ? { concurrency } : {}) });
  t.teardown(() => client.close());
  return client;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Builds a standalone bindle directory from a reference scaffold, with all of its parcel files. */
async function standaloneFromScaffold(dir: string, name: string): Promise<string> {
  const scaffold = loadScaffold(name);
  const parcels = new Map<string, Buffer | string>([...scaffold.parcels.values()].map((p) => [p.sha256, p.data]));
  return writeStandalone(dir, scaffold.invoice, parcels);
}

t.test('push the reference standalone directory, then fetch it twice', async (t) => {
  const client = await setup(t);
  const bindle = await readStandalone(vec('data', 'standalone', WARPCORE));
  const report = await pushStandalone(client, bindle);
  t.same(report, { id: 'enterprise.com/warpcore/1.0.0', created: true, uploaded: [CHIP], alreadyPresent: [], noop: false });
  t.same(await client.getMissingParcels('enterprise.com/warpcore/1.0.0'), []);

  const again = await pushStandalone(client, bindle);
  t.same(again, { id: 'enterprise.com/warpcore/1.0.0', created: false, uploaded: [], alreadyPresent: [CHIP], noop: true }, 'a re-push is a no-op');

  const cache = t.testdir();
  const events: TransferEvent[] = [];
  const first = await fetchBindle(client, 'enterprise.com/warpcore/1.0.0', cache, { onProgress: (e) => events.push(e) });
  t.equal(first.dir, join(cache, WARPCORE));
  t.same(first.fetched, [CHIP]);
  t.same(first.cached, []);
  t.same(events, [
    { kind: 'plan', parcels: 1, bytes: events[1]?.kind === 'start' ? events[1].label.size : -1 },
    ...events.slice(1),
  ], 'a plan of what will move comes first');
  t.same(events.map((e) => e.kind), ['plan', 'start', 'progress', 'done']);
  t.same(await readFile(join(first.dir, 'parcels', `${CHIP}.dat`)), await readFile(vec('data', 'standalone', WARPCORE, 'parcels', `${CHIP}.dat`)));
  const cachedInvoice = parseInvoice(await readFile(join(first.dir, 'invoice.toml'), 'utf8'));
  t.equal(cachedInvoice.signature?.length, 2, 'the server copy, with its host signature');
  t.same((await readStandalone(first.dir)).parcels.get(CHIP), join(first.dir, 'parcels', `${CHIP}.dat`), 'the cache is a standalone bindle');

  const second = await fetchBindle(client, 'enterprise.com/warpcore/1.0.0', cache);
  t.same(second.fetched, [], 'nothing fetched the second time');
  t.same(second.cached, [CHIP]);
  t.same((await readdir(join(first.dir, 'parcels'))).sort(), [`${CHIP}.dat`], 'no temp files left');
});

t.test('push the reference standalone tarball', async (t) => {
  const client = await setup(t);
  const bindle = await readStandalone(vec('data', 'standalone', `${WARPCORE}.tar.gz`));
  t.teardown(() => bindle.cleanup());
  const report = await pushStandalone(client, bindle);
  t.equal(report.created, true);
  t.same(report.uploaded, [CHIP]);
  const fetched = await fetchBindle(client, report.id, t.testdir());
  t.same(fetched.fetched, [CHIP]);
  t.equal(fetched.invoice.bindle.description, 'Warp core components');
});

t.test('only the missing parcels are uploaded', async (t) => {
  const client = await setup(t, 2);
  const dir = t.testdir();
  await pushStandalone(client, await readStandalone(vec('data', 'standalone', WARPCORE)));
  const lotsa = await readStandalone(await standaloneFromScaffold(dir, 'lotsa_parcels'));
  t.equal(lotsa.parcels.size, 3);
  t.ok(lotsa.parcels.has(CHIP), 'lotsa_parcels shares the isolinear chip with warpcore');

  const events: TransferEvent[] = [];
  const report = await pushStandalone(client, lotsa, { onProgress: (e) => events.push(e) });
  const scaffold = loadScaffold('lotsa_parcels');
  const barrel = scaffold.parcels.get('barrel')?.sha256;
  const crate = scaffold.parcels.get('crate')?.sha256;
  t.equal(report.created, true);
  t.same(report.uploaded.sort(), [barrel, crate].sort(), 'exactly the two missing parcels were uploaded');
  t.same(report.alreadyPresent, [CHIP]);
  t.equal(report.noop, false);
  t.equal(events.filter((e) => e.kind === 'start').length, 2);
  t.equal(events.filter((e) => e.kind === 'done').length, 2);
  const missingBytes = (lotsa.invoice.parcel ?? []).filter((p) => p.label.sha256 !== CHIP).reduce((n, p) => n + p.label.size, 0);
  t.same(events[0], { kind: 'plan', parcels: 2, bytes: missingBytes }, 'the plan covers only the parcels to upload');
  t.same(await client.getMissingParcels(report.id), []);

  const again = await pushStandalone(client, lotsa);
  t.equal(again.noop, true, 're-pushing the identical release is a no-op');
  t.same(again.uploaded, []);

  const cache = t.testdir();
  const part = await fetchBindle(client, report.id, cache, { parcels: lotsa.invoice.parcel?.slice(1, 2).map((p) => p.label) });
  t.equal(part.fetched.length, 1, 'a subset');
  const all = await fetchBindle(client, report.id, cache);
  t.same(all.cached, part.fetched);
  t.equal(all.fetched.length, 2);
  await t.rejects(fetchBindle(client, report.id, cache, { parcels: [{ sha256: sha256Of('nope'), mediaType: 'text/plain', name: 'nope', size: 4 }] }), {
    code: 'parcel_not_on_invoice',
  });
});

t.test('push sends the small parcels read with the bindle without reading them again; fetch shares its directory fsyncs', async (t) => {
  const client = await setup(t, 3);
  const dir = t.testdir();
  const bindle = await readStandalone(await standaloneFromScaffold(dir, 'lotsa_parcels'));
  for (const path of bindle.parcels.values()) await rm(path);
  const events: TransferEvent[] = [];
  const report = await pushStandalone(client, bindle, { onProgress: (e) => events.push(e) });
  t.equal(report.uploaded.length, 3, 'every parcel was uploaded from the bytes read with the bindle');
  for (const label of (bindle.invoice.parcel ?? []).map((p) => p.label)) {
    t.ok(events.some((e) => e.kind === 'progress' && e.label.sha256 === label.sha256 && e.bytes === label.size), `progress reports all of ${label.name}`);
  }
  t.same(await client.getMissingParcels(report.id), []);

  const cache = t.testdir();
  const fetched = await fetchBindle(client, report.id, cache);
  t.equal(fetched.fetched.length, 3);
  for (const label of (bindle.invoice.parcel ?? []).map((p) => p.label)) {
    t.same(sha256(await readFile(join(fetched.dir, 'parcels', `${label.sha256}.dat`))), label.sha256);
  }
  const first = bindle.invoice.parcel?.[0]?.label;
  if (first === undefined) throw new Error('lotsa_parcels has no parcel');
  await t.rejects(
    client.downloadParcel(report.id, first, join(cache, 'x.dat'), { directorySync: new DirectorySync(join(cache, 'other')) }),
    { code: 'internal' },
    'a directory sync of another directory is refused',
  );
});

/** A client of `concurrency` on a listening test server, and the number of connections the server accepted so far. */
async function countingClient(t: Test, concurrency: number): Promise<{ client: BindleClient; connections: () => number }> {
  const ta = await makeTestApp(t);
  await ta.app.listen({ host: '127.0.0.1', port: 0 });
  let connections = 0;
  ta.app.server.on('connection', () => (connections += 1));
  const { port } = ta.app.server.address() as AddressInfo;
  const client = new BindleClient({ baseUrl: `http://127.0.0.1:${port}/v1/`, concurrency });
  t.teardown(() => client.close());
  return { client, connections: () => connections };
}

t.test('a push of many parcels opens no more connections than the client\'s concurrency', async (t) => {
  const { client, connections } = await countingClient(t, 4);
  const parcels = Array.from({ length: 300 }, (_, i) => ({ name: `p-${i}.bin`, data: Buffer.from(`parcel ${i}`) }));
  const dir = await writeStandalone(
    t.testdir(),
    signedInvoice('example.com/many', '1.0.0', parcels),
    new Map(parcels.map((p) => [sha256(p.data), p.data])),
  );
  const report = await pushStandalone(client, await readStandalone(dir));
  t.equal(report.uploaded.length, 300);
  t.ok(connections() <= 4, `${connections()} connection(s) for 1 invoice and 300 parcels at concurrency 4`);
});

t.test('a client of concurrency 1 (one connection) pushes and fetches a bindle of small and streamed parcels', async (t) => {
  const { client, connections } = await countingClient(t, 1);
  // Small parcels are read whole, one over SMALL_PARCEL_BYTES is streamed both ways.
  const parcels = [
    ...Array.from({ length: 20 }, (_, i) => ({ name: `small-${i}.bin`, data: Buffer.from(`small parcel ${i}`) })),
    { name: 'large.bin', data: Buffer.alloc(300_000, 7) },
  ];
  const dir = await writeStandalone(
    t.testdir(),
    signedInvoice('example.com/one-connection', '1.0.0', parcels),
    new Map(parcels.map((p) => [sha256(p.data), p.data])),
  );
  const report = await pushStandalone(client, await readStandalone(dir));
  t.equal(report.uploaded.length, parcels.length);
  const fetched = await fetchBindle(client, report.id, t.testdir());
  t.equal(fetched.fetched.length, parcels.length);
  for (const p of parcels) t.same(await readFile(join(fetched.dir, 'parcels', `${sha256(p.data)}.dat`)), p.data, p.name);
  t.equal(connections(), 1, 'over one connection');
});

t.test('a different release under an existing id fails loudly', async (t) => {
  const client = await setup(t);
  const dir = t.testdir({ a: {}, b: {}, c: {} });
  const original = signedInvoice('example.com/release', '1.0.0', [{ name: 'a.txt', data: Buffer.from('alpha') }], { description: 'first' });
  const pushed = await pushStandalone(client, await readStandalone(await writeStandalone(join(dir, 'a'), original, new Map([[sha256Of('alpha'), Buffer.from('alpha')]]))));
  t.equal(pushed.created, true);

  const unsigned: Invoice = { ...original, bindle: { ...original.bindle, description: 'second' } };
  delete unsigned.signature;
  const different = signInvoice(unsigned, 'creator', creatorKey());
  const other = await readStandalone(await writeStandalone(join(dir, 'b'), different, new Map()));
  await t.rejects(pushStandalone(client, other), {
    code: 'already_exists',
    message: /a different release example\.com\/release\/1\.0\.0 already exists on the server \(bindle name, version, description or authors differ/,
  });
  t.equal((await client.getInvoice('example.com/release/1.0.0')).bindle.description, 'first', 'the server copy is untouched');

  await client.yankInvoice('example.com/release/1.0.0');
  const same = await readStandalone(join(dir, 'a'));
  await t.rejects(pushStandalone(client, same), { code: 'yanked' });

  const partial = signedInvoice('example.com/partial', '1.0.0', [
    { name: 'here.txt', data: Buffer.from('here') },
    { name: 'gone.txt', data: Buffer.from('gone') },
  ]);
  const incomplete = await readStandalone(await writeStandalone(join(dir, 'c'), partial, new Map([[sha256Of('here'), Buffer.from('here')]])));
  await t.rejects(pushStandalone(client, incomplete), { code: 'not_found', message: /gone\.txt.*nothing was pushed/ });
  t.equal(await client.invoiceExists('example.com/partial/1.0.0'), false, 'a new invoice is not created when the bindle lacks a parcel');
});

t.test('fetch verifies the invoice before writing anything', async (t) => {
  const client = await setup(t);
  await pushStandalone(client, await readStandalone(vec('data', 'standalone', WARPCORE)));
  const untrusting = new BindleClient({ baseUrl: client.baseUrl, keyring: new Keyring() });
  t.teardown(() => untrusting.close());
  const cache = t.testdir();
  await t.rejects(fetchBindle(untrusting, 'enterprise.com/warpcore/1.0.0', cache), { code: 'unknown_signing_key' });
  t.notOk(await exists(join(cache, WARPCORE)), 'no cache entry for an untrusted invoice');
});

function sha256Of(text: string): string {
  return sha256(Buffer.from(text));
}
