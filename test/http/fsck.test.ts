/**
 * Issue 15 item 6: the scrub (server/service/fsck.ts) on the configured backend pair: a clean
 * store has no problems; a parcel corrupted in the store itself (on disk, or overwritten through
 * the S3 API) is reported, as are size mismatches, missing parcels and orphans; `repair` removes
 * only the corrupt parcel, which a re-upload then restores.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { fsck, hasProblems } from '../../server/service/fsck.js';
import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import { S3ParcelStore } from '../../server/storage/s3-parcel-store.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, storeInvoiceDirect, type TestApp } from '../helpers/test-app.js';

/** Overwrites a stored parcel's bytes behind the store's back (bit rot, a bad disk, an operator). */
async function corrupt(ta: TestApp, sha: string, bytes: Buffer): Promise<void> {
  const store = ta.parcels;
  if (store instanceof FileParcelStore) {
    await chmod(store.dataPath(sha), 0o644);
    await writeFile(store.dataPath(sha), bytes);
    return;
  }
  if (!(store instanceof S3ParcelStore)) throw new Error('unknown parcel store');
  const client = new S3Client({
    endpoint: process.env.BINDLE_TEST_S3_ENDPOINT ?? '',
    region: process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  t.teardown(() => client.destroy());
  await client.send(new PutObjectCommand({ Bucket: store.bucket, Key: store.keyOf(sha), Body: bytes }));
}

t.test('fsck: clean, then corrupt, size mismatch, missing and orphan reported; repair removes only the corrupt parcel', async (t) => {
  const ta = await makeTestApp(t);
  const good = Buffer.from('a good parcel');
  const rotten = Buffer.from('a parcel that will rot');
  const never = Buffer.from('never uploaded');
  const { missing } = await ta.service.createInvoice(
    signedInvoice('example.com/app', '1.0.0', [{ name: 'g', data: good }, { name: 'r', data: rotten }]),
  );
  t.equal(missing.length, 2);
  for (const data of [good, rotten]) {
    const res = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/app/1.0.0@${sha256(data)}`, payload: data });
    t.equal(res.statusCode, 200);
  }
  const clean = await fsck(ta.index, ta.parcels);
  t.match(clean, { invoices: 1, parcels: 2, bytes: good.length + rotten.length, corrupt: [], sizeMismatches: [], missing: [], orphans: [] });
  t.equal(hasProblems(clean), false, 'a clean store has no problem');

  await corrupt(ta, sha256(rotten), Buffer.from('a parcel that has rotted'));
  // An invoice whose label gives a parcel another size than its stored bytes (stored as they are,
  // as before the create-time size rules), one never uploaded, and an orphan.
  const odd = Buffer.from('a parcel labelled with another size');
  const mislabelled = signedInvoice('example.com/other', '1.0.0', [{ name: 'o', data: odd }, { name: 'n', data: never }]);
  const label = mislabelled.parcel?.[0]?.label;
  if (label !== undefined) label.size = odd.length + 1;
  await storeInvoiceDirect(ta, mislabelled);
  await ta.parcels.put(sha256(odd), odd.length, Readable.from([odd]));
  const orphan = Buffer.from('an orphan');
  await ta.parcels.put(sha256(orphan), orphan.length, Readable.from([orphan]));

  const found = await fsck(ta.index, ta.parcels);
  t.equal(hasProblems(found), true);
  t.same(found.corrupt, [{ sha256: sha256(rotten), actualSha256: sha256(Buffer.from('a parcel that has rotted')), invoices: ['example.com/app/1.0.0'] }]);
  t.same(found.sizeMismatches, [
    { sha256: sha256(odd), storedSize: odd.length, labelSizes: [odd.length + 1], invoices: ['example.com/other/1.0.0'] },
  ]);
  t.same(found.missing, [{ sha256: sha256(never), invoices: ['example.com/other/1.0.0'] }]);
  t.same(found.orphans, [sha256(orphan)]);
  t.same(found.repaired, [], 'no repair unless asked');
  t.equal(await ta.parcels.has(sha256(rotten)), true);

  const audits: object[] = [];
  const repaired = await fsck(ta.index, ta.parcels, { repair: true, audit: { info: (fields) => audits.push(fields) } });
  t.same(repaired.repaired, [sha256(rotten)], 'repair removes the corrupt parcel');
  t.match(audits, [{ audit: true, action: 'fsck-remove', parcel: sha256(rotten) }]);
  for (const data of [good, odd, orphan]) t.equal(await ta.parcels.has(sha256(data)), true, 'and touches no other one');
  const reupload = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/app/1.0.0@${sha256(rotten)}`, payload: rotten });
  t.equal(reupload.statusCode, 200, 'the corrupt parcel can be uploaded again');
  const after = await fsck(ta.index, ta.parcels);
  t.same(after.corrupt, [], 'and then it is good');
});
