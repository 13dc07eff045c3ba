/**
 * migrate() over the storage interfaces (real SQLite indexes and file parcel stores): a yank made
 * at the source after a first copy is carried over (the destination's entry becomes the source's
 * bytes), a different invoice under the same id at the destination is reported and left alone,
 * a parcel whose source bytes do not match its digest is refused by the destination, and the
 * tombstones of hard deletes and the OCI blob links are carried over.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { canonicalInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { createSecretKey } from '../../core/signing/keys.js';
import { yankInvoice } from '../../core/signing/sign.js';
import type { Invoice } from '../../schema/index.js';
import { migrate, type MigrationEnd } from '../../server/service/migrate.js';
import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import type { StoredInvoice } from '../../server/storage/invoice-index.js';
import { SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';

async function end(t: Test, dir: string): Promise<MigrationEnd & { parcels: FileParcelStore }> {
  const parcels = await FileParcelStore.open(dir);
  const index = SqliteInvoiceIndex.open(join(dir, 'index.sqlite'));
  t.teardown(async () => {
    await index.close();
    await parcels.close();
  });
  return { index, parcels };
}

function stored(invoice: Invoice): StoredInvoice {
  const inv = canonicalInvoice(invoice);
  const id = { name: inv.bindle.name, version: inv.bindle.version };
  return {
    ...id, canonicalId: canonicalId(id), invoice: inv, toml: renderInvoice(inv, 'toml'), json: renderInvoice(inv, 'json'),
    yanked: inv.yanked === true, createdAt: 1_700_000_000_000,
  };
}

t.test('yanks made after a first copy are carried over; conflicts are reported and left alone', async (t) => {
  const root = t.testdir();
  const from = await end(t, join(root, 'from'));
  const to = await end(t, join(root, 'to'));
  const host = createSecretKey('Host', ['host']);
  const data = Buffer.from('parcel bytes');
  await from.parcels.put(sha256(data), data.length, Readable.from([data]));
  const a = signedInvoice('example.com/a', '1.0.0', [{ name: 'p.txt', data }]);
  const b = signedInvoice('example.com/b', '1.0.0', []);
  await from.index.insert(stored(a));
  await from.index.insert(stored(b));

  // The destination already holds a different invoice under b's id.
  await to.index.insert(stored(signedInvoice('example.com/b', '1.0.0', [], { description: 'not the same' })));
  let report = await migrate(from, to);
  t.match(report, { parcelsCopied: 1, bytesCopied: data.length, invoicesCopied: 1 });
  t.match(report.failures, [{ item: 'invoice example.com/b/1.0.0', reason: /different invoice.*left as it is/ }]);

  const yanked = stored(yankInvoice(a, host, '', 1_700_000_100));
  t.equal(await from.index.yank(yanked), true);
  report = await migrate(from, to);
  t.match(report, { parcelsCopied: 0, parcelsPresent: 1, invoicesCopied: 0, invoicesYanked: 1, invoicesPresent: 0 });
  t.match(report.failures, [{ item: 'invoice example.com/b/1.0.0', reason: /different invoice.*left as it is/ }]);
  const after = await to.index.get('example.com/a', '1.0.0');
  t.equal(after?.toml, yanked.toml, 'the yanked bytes, exactly');
  t.equal(after?.yanked, true);
  t.equal(after?.createdAt, 1_700_000_000_000, 'creation time kept');
  t.match((await to.index.get('example.com/b', '1.0.0'))?.invoice.bindle, { description: 'not the same' }, 'the conflict is left alone');
});

t.test('a yanked bindle keeps its OCI manifest digest when copied', async (t) => {
  const root = t.testdir();
  const from = await end(t, join(root, 'from'));
  const to = await end(t, join(root, 'to'));
  const a = signedInvoice('example.com/a', '1.0.0', []);
  await from.index.insert(stored(a));
  const digest = (await from.index.ociManifest('example.com/a', '1.0.0'))?.digest;
  t.equal(await from.index.yank(stored(yankInvoice(a, createSecretKey('Host', ['host']), '', 1_700_000_100))), true);
  t.match(await migrate(from, to), { invoicesCopied: 1 });
  t.equal((await to.index.ociManifest('example.com/a', '1.0.0'))?.digest, digest, 'not rebuilt from the yanked TOML');
});

t.test('a corrupt source parcel is refused by the destination and reported', async (t) => {
  const root = t.testdir();
  const from = await end(t, join(root, 'from'));
  const to = await end(t, join(root, 'to'));
  const data = Buffer.from('good bytes');
  const digest = sha256(data);
  await from.parcels.put(digest, data.length, Readable.from([data]));
  chmodSync(from.parcels.dataPath(digest), 0o644); // stored parcels are read-only
  writeFileSync(from.parcels.dataPath(digest), 'evil bytes');
  const report = await migrate(from, to);
  t.equal(report.parcelsCopied, 0);
  t.match(report.failures, [{ item: `parcel ${digest}`, reason: /sha256|digest/i }]);
  t.equal(await to.parcels.has(digest), false, 'nothing half-written at the destination');
});

t.test('tombstones of hard deletes are carried over, so the destination refuses those ids too', async (t) => {
  const root = t.testdir();
  const from = await end(t, join(root, 'from'));
  const to = await end(t, join(root, 'to'));
  const gone = stored(signedInvoice('example.com/gone', '1.0.0', []));
  await from.index.insert(gone);
  const tombstone = { name: gone.name, version: gone.version, canonicalId: gone.canonicalId, deletedAt: 1_700_000_200_000, record: '{"signed":"record"}' };
  await from.index.delete(tombstone);
  await to.index.insert(stored(signedInvoice('example.com/live', '1.0.0', [])));
  await from.index.insert(stored(signedInvoice('example.com/live', '1.0.0', [])));
  await from.index.delete({ ...tombstone, name: 'example.com/live', canonicalId: canonicalId({ name: 'example.com/live', version: '1.0.0' }) });
  let report = await migrate(from, to);
  t.match(report, { tombstonesCopied: 1, tombstonesPresent: 0 });
  t.same(await to.index.tombstone('example.com/gone', '1.0.0'), tombstone, 'copied as it is');
  await t.rejects(to.index.insert(gone), { code: 'deleted' }, 'the destination refuses a re-create');
  t.match(report.failures, [{ item: 'tombstone example.com/live/1.0.0', reason: /exists: it cannot have a tombstone/ }], 'an id live at the destination is reported');
  report = await migrate(from, to);
  t.match(report, { tombstonesCopied: 0, tombstonesPresent: 1 }, 'a second run copies nothing');
});

t.test('OCI blob links are carried over with their times, in pages; a second run copies none', async (t) => {
  const root = t.testdir();
  const from = await end(t, join(root, 'from'));
  const to = await end(t, join(root, 'to'));
  const links = Array.from({ length: 300 }, (_, i) => ({ name: `example.com/repo${i % 3}`, sha256: sha256(Buffer.from(`blob ${i}`)), linkedAt: 1_700_000_000_000 + i }));
  for (const link of links) await from.index.linkOciBlob(link);
  const [first] = links;
  if (first === undefined) throw new Error('no links');
  await to.index.linkOciBlob({ ...first, linkedAt: 1 });
  let report = await migrate(from, to);
  t.match(report, { linksCopied: 299, linksPresent: 1, failures: [] });
  const copied = await to.index.ociBlobLinkPage(undefined, 1000);
  t.same(copied, await from.index.ociBlobLinkPage(undefined, 1000), 'every link, its time too (a present one moved forward to the source\'s)');
  report = await migrate(from, to);
  t.match(report, { linksCopied: 0, linksPresent: 300 }, 'a second run copies nothing');
});
