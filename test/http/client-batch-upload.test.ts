/**
 * Batch uploads from the client (BindleClient.createParcels, the push workflow) against a real
 * listening server: a push sends the parcels it holds in memory in batches and streams the large
 * ones; against a server that takes no batch (a reference server answers 405) it uploads one by
 * one. The "older server" is the real one behind a forwarding proxy that refuses batches as the
 * reference server does.
 */
import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { BindleClient, pushStandalone, readStandalone, writeStandalone } from '../../client/lib/index.js';
import { BATCH_PARCELS } from '../../client/lib/parcel-batches.js';
import { SMALL_PARCEL_BYTES } from '../../client/lib/parcel-digest.js';
import { BUFFERED_PART_BYTES, MAX_BATCH_PARTS, MAX_BUFFERED_BYTES, PARTS_IN_FLIGHT } from '../../server/http/parcel-batch.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { recordedServer, refusingProxy } from '../helpers/batch-servers.js';

const NAME = 'example.com/batched';

/** A standalone bindle of `small` parcels under SMALL_PARCEL_BYTES and `large` over it. */
async function standalone(t: Test, version: string, small: number, large: number): Promise<string> {
  const parcels = [
    ...Array.from({ length: small }, (_, i) => ({ name: `small-${i}.txt`, data: Buffer.from(`small parcel ${i} of ${version}`) })),
    ...Array.from({ length: large }, (_, i) => ({ name: `large-${i}.bin`, data: Buffer.alloc(SMALL_PARCEL_BYTES + 1000, i + 1) })),
  ];
  return writeStandalone(t.testdir(), signedInvoice(NAME, version, parcels), new Map(parcels.map((p) => [sha256(p.data), p.data])));
}

t.test('a push sends the small parcels in batches, the large ones one by one', async (t) => {
  const server = await recordedServer(t);
  // Two transfers side by side: the batches are full ones (with 16, they would be 15 of 9).
  const client = new BindleClient({ baseUrl: server.url, concurrency: 2 });
  t.teardown(() => client.close());
  const small = BATCH_PARCELS * 2 + 5;
  const dir = await standalone(t, '1.0.0', small, 2);
  const report = await pushStandalone(client, await readStandalone(dir));
  t.equal(report.uploaded.length, small + 2, 'every parcel uploaded');
  t.same(await client.getMissingParcels(report.id), [], 'nothing missing');
  const posts = server.requests().filter((r) => r.method === 'POST');
  t.equal(posts.filter((r) => r.url === `/v1/_i/${NAME}/1.0.0`).length, 3, `${small} small parcels in 3 batches`);
  t.equal(posts.filter((r) => r.url.includes('@')).length, 2, 'the 2 large ones alone');

  const again = await pushStandalone(client, await readStandalone(dir));
  t.ok(again.noop, 'a second push has nothing to do');
});

t.test('createParcels: created and existing; bytes that do not match their label are refused before sending', async (t) => {
  const server = await recordedServer(t);
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  const parcels = ['one', 'two', 'three'].map((s) => ({ name: s, data: Buffer.from(s) }));
  const invoice = signedInvoice(NAME, '2.0.0', parcels);
  await client.createInvoice(invoice);
  const [one, two, three] = (invoice.parcel ?? []).map((p, i) => ({ label: p.label, data: parcels[i]?.data ?? Buffer.alloc(0) }));
  if (one === undefined || two === undefined || three === undefined) throw new Error('three parcels expected');
  t.same(await client.createParcels(`${NAME}/2.0.0`, [one, two]), { created: [one.label.sha256, two.label.sha256], existing: [] });
  t.same(await client.createParcels(`${NAME}/2.0.0`, [two, three]), { created: [three.label.sha256], existing: [two.label.sha256] });
  const before = server.requests().length;
  await t.rejects(client.createParcels(`${NAME}/2.0.0`, [{ label: one.label, data: Buffer.from('ONE') }]), { code: 'digest_mismatch' });
  t.equal(server.requests().length, before, 'nothing was sent');
  t.equal(await client.createParcels(`${NAME}/9.9.9`, [one]), undefined, 'an absent invoice (404): as if batches were not taken');
  await t.rejects(client.createParcel(`${NAME}/9.9.9`, one.label, one.data), { code: 'not_found' }, 'and the single upload says why');
});

t.test('against a server that takes no batch, a push uploads every parcel one by one', async (t) => {
  const server = await recordedServer(t);
  const proxy = await refusingProxy(t, server.url, { kind: 'no-batches' });
  const client = new BindleClient({ baseUrl: proxy.url, concurrency: 4 });
  t.teardown(() => client.close());
  const small = BATCH_PARCELS * 3;
  const report = await pushStandalone(client, await readStandalone(await standalone(t, '3.0.0', small, 1)));
  t.equal(report.uploaded.length, small + 1, 'every parcel uploaded');
  t.ok(proxy.refused() >= 1 && proxy.refused() <= 3, `batches tried until the first refusal came back: ${proxy.refused()}, at most the 3 started side by side`);
  const singles = server.requests().filter((r) => r.method === 'POST' && r.url.includes('@')).length;
  t.equal(singles, small + 1, 'each parcel uploaded on its own');
  t.same(await client.getMissingParcels(report.id), []);
});

t.test('behind a proxy whose body limit a batch exceeds (413, as nginx answers), a push uploads one by one', async (t) => {
  const server = await recordedServer(t);
  const proxy = await refusingProxy(t, server.url, { kind: 'body-limit', bytes: 100_000 });
  const client = new BindleClient({ baseUrl: proxy.url, concurrency: 2 });
  t.teardown(() => client.close());
  const parcels = Array.from({ length: 40 }, (_, i) => ({ name: `p-${i}.bin`, data: Buffer.alloc(20_000, i + 1) }));
  const dir = await writeStandalone(t.testdir(), signedInvoice(NAME, '4.0.0', parcels), new Map(parcels.map((p) => [sha256(p.data), p.data])));
  const report = await pushStandalone(client, await readStandalone(dir));
  t.equal(report.uploaded.length, parcels.length, 'every parcel uploaded');
  t.ok(proxy.refused() >= 1 && proxy.refused() <= 2, `the batches refused: ${proxy.refused()}, at most the 2 started side by side`);
  t.equal(server.requests().filter((r) => r.method === 'POST' && r.url.includes('@')).length, parcels.length, 'each parcel on its own');
  t.same(await client.getMissingParcels(report.id), []);
});

t.test('the README states the batch limits the code has', async (t) => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const text = readme.replace(/\s+/g, ' ');
  t.match(text, `at most ${MAX_BATCH_PARTS} parts`, 'the server\'s part limit');
  t.match(text, `parts of up to ${BUFFERED_PART_BYTES / 1024} KiB are read whole and stored up to ${PARTS_IN_FLIGHT} at a time`, 'how the server stores them');
  t.match(text, `hold at most ${MAX_BUFFERED_BYTES / (1024 * 1024)} MiB so`, 'and the memory they may hold');
  t.match(text, `parcels it read whole (up to ${SMALL_PARCEL_BYTES / 1024} KiB) in batches of at most ${BATCH_PARCELS}`, 'the client\'s batches');
});
