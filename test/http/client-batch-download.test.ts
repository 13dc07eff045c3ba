/**
 * Batch downloads from the client (BindleClient.downloadParcels, the fetch workflow) against a
 * real listening server: a get fetches the small parcels in batches and the large ones alone;
 * against a server that takes no batch (a reference server ignores the query and answers the
 * invoice) it downloads one by one; a batch whose bytes do not match their labels stores none of
 * those, and the get fetches them one by one instead.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Label } from '../../schema/index.js';
import { BindleClient, fetchBindle, pushStandalone, readStandalone, writeStandalone } from '../../client/lib/index.js';
import { BATCH_PARCELS } from '../../client/lib/parcel-batches.js';
import { SMALL_PARCEL_BYTES } from '../../client/lib/parcel-digest.js';
import { DirectorySync } from '../../core/fs-atomic.js';
import { MAX_BATCH_DOWNLOAD_PARCELS } from '../../server/http/parcel-batch-download.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { recordedServer, refusingProxy } from '../helpers/batch-servers.js';

const NAME = 'example.com/batch-fetched';

/** `small` parcels under SMALL_PARCEL_BYTES (each says `small`) and `large` over it. */
function parcelsOf(version: string, small: number, large: number): TestParcel[] {
  return [
    ...Array.from({ length: small }, (_, i) => ({ name: `small-${i}.txt`, data: Buffer.from(`small parcel ${i} of ${version}`) })),
    ...Array.from({ length: large }, (_, i) => ({ name: `large-${i}.bin`, data: Buffer.alloc(SMALL_PARCEL_BYTES + 1000, i + 1) })),
  ];
}

/** Pushes a bindle of `parcels` to `url`; its id. */
async function pushed(t: Test, url: string, version: string, parcels: TestParcel[]): Promise<string> {
  const client = new BindleClient({ baseUrl: url });
  t.teardown(() => client.close());
  const dir = await writeStandalone(t.testdir(), signedInvoice(NAME, version, parcels), new Map(parcels.map((p) => [sha256(p.data), p.data])));
  return (await pushStandalone(client, await readStandalone(dir))).id;
}

/** Checks that `dir` holds exactly `parcels` as `<sha256>.dat`, byte for byte. */
async function holdsExactly(t: Test, dir: string, parcels: TestParcel[]): Promise<void> {
  t.same((await readdir(dir)).sort(), parcels.map((p) => `${sha256(p.data)}.dat`).sort(), 'every parcel, and nothing else (no temp file)');
  for (const p of parcels) t.ok((await readFile(join(dir, `${sha256(p.data)}.dat`))).equals(p.data), `${p.name}: its bytes`);
}

t.test('a get fetches the small parcels in batches, the large ones one by one', async (t) => {
  const server = await recordedServer(t);
  const small = BATCH_PARCELS * 2 + 5;
  const parcels = parcelsOf('1.0.0', small, 2);
  const id = await pushed(t, server.url, '1.0.0', parcels);
  // Two transfers side by side: the batches are full ones.
  const client = new BindleClient({ baseUrl: server.url, concurrency: 2 });
  t.teardown(() => client.close());
  const before = server.requests().length;
  const cache = t.testdir();
  const fetched = await fetchBindle(client, id, cache);
  t.equal(fetched.fetched.length, small + 2);
  await holdsExactly(t, join(fetched.dir, 'parcels'), parcels);
  const gets = server.requests().slice(before).filter((r) => r.method === 'GET');
  t.equal(gets.filter((r) => r.url.includes('?parcels=')).length, 3, `${small} small parcels in 3 batches`);
  t.equal(gets.filter((r) => r.url.includes('@')).length, 2, 'the 2 large ones alone');
});

t.test('downloadParcels: stores each parcel it is sent; false from a server that ignores the query', async (t) => {
  const server = await recordedServer(t);
  const parcels = parcelsOf('2.0.0', 3, 0);
  const id = await pushed(t, server.url, '2.0.0', parcels);
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  const labels: Label[] = parcels.map((p) => ({ sha256: sha256(p.data), size: p.data.length, mediaType: 'text/plain', name: p.name }));
  const dir = t.testdir();
  const stored: string[] = [];
  const into = { directorySync: new DirectorySync(dir), fileName: (l: Label) => `${l.sha256}.dat` };
  t.equal(await client.downloadParcels(id, labels, into, { onStored: (l) => stored.push(l.sha256) }), true);
  t.same(stored.sort(), labels.map((l) => l.sha256).sort(), 'told of each');
  await holdsExactly(t, dir, parcels);

  const proxy = await refusingProxy(t, server.url, { kind: 'no-batch-downloads' });
  const old = new BindleClient({ baseUrl: proxy.url });
  t.teardown(() => old.close());
  const elsewhere = t.testdir();
  t.equal(await old.downloadParcels(id, labels, { directorySync: new DirectorySync(elsewhere), fileName: into.fileName }), false, 'the invoice came back instead');
  t.same(await readdir(elsewhere), [], 'nothing stored');
  t.equal(proxy.refused(), 1);
});

t.test('against a server that takes no batch, a get downloads every parcel one by one', async (t) => {
  const server = await recordedServer(t);
  const small = BATCH_PARCELS * 3;
  const parcels = parcelsOf('3.0.0', small, 1);
  const id = await pushed(t, server.url, '3.0.0', parcels);
  const proxy = await refusingProxy(t, server.url, { kind: 'no-batch-downloads' });
  const client = new BindleClient({ baseUrl: proxy.url, concurrency: 4 });
  t.teardown(() => client.close());
  const before = server.requests().length;
  const fetched = await fetchBindle(client, id, t.testdir());
  await holdsExactly(t, join(fetched.dir, 'parcels'), parcels);
  t.ok(proxy.refused() >= 1 && proxy.refused() <= 3, `batches tried until the first refusal came back: ${proxy.refused()}, at most the 3 started side by side`);
  const singles = server.requests().slice(before).filter((r) => r.method === 'GET' && r.url.includes('@')).length;
  t.equal(singles, small + 1, 'each parcel downloaded on its own');
});

t.test('a batch whose bytes do not match their labels: none of those stored, the get fetches them one by one', async (t) => {
  const server = await recordedServer(t);
  const parcels = parcelsOf('4.0.0', 10, 0);
  const id = await pushed(t, server.url, '4.0.0', parcels);
  const proxy = await refusingProxy(t, server.url, { kind: 'alter-batch-downloads' });
  const client = new BindleClient({ baseUrl: proxy.url, concurrency: 1 });
  t.teardown(() => client.close());
  const labels: Label[] = parcels.map((p) => ({ sha256: sha256(p.data), size: p.data.length, mediaType: 'text/plain', name: p.name }));
  const dir = t.testdir();
  await t.rejects(
    client.downloadParcels(id, labels, { directorySync: new DirectorySync(dir), fileName: (l) => `${l.sha256}.dat` }),
    { code: 'digest_mismatch' },
    'the batch fails as a single download of altered bytes would',
  );
  t.same(await readdir(dir), [], 'nothing stored, no temp file left');

  const before = server.requests().length;
  const fetched = await fetchBindle(client, id, t.testdir());
  await holdsExactly(t, join(fetched.dir, 'parcels'), parcels);
  t.equal(server.requests().slice(before).filter((r) => r.url.includes('@')).length, parcels.length, 'each fetched again on its own');
});

t.test('a batch reply cut short mid-part fails the batch, it does not hang; the get fetches the rest one by one', async (t) => {
  const server = await recordedServer(t);
  // Parcels of 20 KB: the reply is cut inside the second part.
  const parcels = Array.from({ length: 6 }, (_, i) => ({ name: `mid-${i}.bin`, data: Buffer.alloc(20_000, i + 1) }));
  const id = await pushed(t, server.url, '5.0.0', parcels);
  const proxy = await refusingProxy(t, server.url, { kind: 'cut-batch-downloads', bytes: 30_000 });
  const client = new BindleClient({ baseUrl: proxy.url, concurrency: 1, retries: 0 });
  t.teardown(() => client.close());
  const labels: Label[] = parcels.map((p) => ({ sha256: sha256(p.data), size: p.data.length, mediaType: 'text/plain', name: p.name }));
  const dir = t.testdir();
  const stored: string[] = [];
  await t.rejects(
    client.downloadParcels(id, labels, { directorySync: new DirectorySync(dir), fileName: (l) => `${l.sha256}.dat` }, { onStored: (l) => stored.push(l.sha256) }),
    { code: 'unavailable' },
    'the transfer cut short is reported',
  );
  t.same(stored, [labels[0]?.sha256], 'the part that came whole is stored');
  t.same((await readdir(dir)).sort(), stored.map((sha) => `${sha}.dat`), 'nothing else, no temp file');

  // Several rounds: the connection may close before the client reads the reply's body, or while
  // it does (a body that failed before it was read once left the get waiting for ever).
  for (let round = 0; round < 5; round++) {
    const fetched = await fetchBindle(client, id, t.testdir());
    await holdsExactly(t, join(fetched.dir, 'parcels'), parcels);
  }
});

t.test('the README states the batch download limits the code has', async (t) => {
  const text = (await readFile(new URL('../../README.md', import.meta.url), 'utf8')).replace(/\s+/g, ' ');
  t.match(text, `(at most ${MAX_BATCH_DOWNLOAD_PARCELS}: the list is in the URL)`, 'the server\'s limit');
  t.match(text, `fetches the parcels of up to ${SMALL_PARCEL_BYTES / 1024} KiB in such batches (up to ${BATCH_PARCELS} each)`, 'the client\'s batches');
});
