/**
 * Issue 15 item 5: garbage collection of parcels (server/service/garbage-collect.ts) on the
 * configured backend pair: only unreferenced parcels older than the grace period go, a dry run
 * removes nothing, and a collection racing invoice creates and uploads that need a parcel never
 * leaves an invoice without it — in the exact interleavings (an invoice created between the
 * look-up and the hiding, or while the parcel is hidden) and in a free-running race.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { collectGarbage } from '../../server/service/garbage-collect.js';
import type { InvoiceIndex } from '../../server/storage/invoice-index.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';

const HOUR = 60 * 60 * 1000;
/** Collections run "two hours later", so that every parcel stored by the test is past the grace. */
const later = (): number => Date.now() + 2 * HOUR;

async function storeParcel(ta: TestApp, data: Buffer): Promise<string> {
  const sha = sha256(data);
  await ta.parcels.put(sha, data.length, Readable.from([data]));
  return sha;
}

/**
 * The real index, with `hook` run around each look-up of who references `sha` (call number
 * from 1): `before` it, or `after` it answered (the answer is then returned as it was).
 */
function hookedIndex(index: InvoiceIndex, sha: string, when: 'before' | 'after', hook: (call: number) => Promise<void>): InvoiceIndex {
  let calls = 0;
  return new Proxy(index, {
    get(target, prop, receiver) {
      if (prop !== 'invoicesWithParcel') return Reflect.get(target, prop, receiver) as unknown;
      return async (digest: string) => {
        if (digest !== sha) return target.invoicesWithParcel(digest);
        const call = ++calls;
        if (when === 'before') await hook(call);
        const answer = await target.invoicesWithParcel(digest);
        if (when === 'after') await hook(call);
        return answer;
      };
    },
  });
}

t.test('gc removes only unreferenced parcels past the grace period; dry run removes nothing', async (t) => {
  const ta = await makeTestApp(t);
  const kept = Buffer.from('referenced by a live invoice');
  const deleted = Buffer.from('referenced by a hard-deleted invoice');
  const stray = randomBytes(3000);
  await ta.service.createInvoice(signedInvoice('example.com/keep', '1.0.0', [{ name: 'k', data: kept }]));
  await ta.service.createInvoice(signedInvoice('example.com/gone', '1.0.0', [{ name: 'd', data: deleted }, { name: 'k', data: kept }]));
  await ta.service.yank({ name: 'example.com/keep', version: '1.0.0' });
  for (const data of [kept, deleted, stray]) await storeParcel(ta, data);
  await ta.service.deleteInvoice({ name: 'example.com/gone', version: '1.0.0' }, 'root');

  const fresh = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR });
  t.match(fresh, { scanned: 3, young: 3, removed: 0 }, 'within the grace period nothing is removed');

  const dry = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later, dryRun: true });
  t.match(dry, { dryRun: true, scanned: 3, referenced: 1, removed: 2, removedBytes: deleted.length + stray.length, failures: [] });
  t.equal(await ta.parcels.has(sha256(stray)), true, 'a dry run removes nothing');

  const audits: object[] = [];
  const removed: string[] = [];
  const real = await collectGarbage(ta.index, ta.parcels, {
    graceMs: HOUR,
    now: later,
    audit: { info: (fields) => audits.push(fields) },
    onRemoved: (sha) => removed.push(sha),
  });
  t.match(real, { dryRun: false, scanned: 3, referenced: 1, removed: 2, kept: 0, failures: [] });
  t.same(removed.sort(), [sha256(deleted), sha256(stray)].sort());
  t.equal(await ta.parcels.has(sha256(kept)), true, 'a parcel of a (yanked) invoice stays');
  t.equal(await ta.parcels.has(sha256(deleted)), false);
  t.equal(await ta.parcels.has(sha256(stray)), false);
  t.same(
    audits.map((a) => ({ ...a })),
    removed.map((parcel) => ({ audit: true, principal: null, action: 'gc-remove', bindle: null, parcel, outcome: 'success', status: 0 })),
    'each removal is audited',
  );
  t.match(await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later }), { scanned: 1, removed: 0 }, 'a second run finds nothing');
});

t.test('an invoice created between the look-up and the hiding keeps its parcel', async (t) => {
  const ta = await makeTestApp(t);
  const data = randomBytes(4000);
  const sha = await storeParcel(ta, data);
  let missing: string[] | undefined;
  const index = hookedIndex(ta.index, sha, 'after', async (call) => {
    if (call !== 1) return;
    // The parcel is still visible: the create reports nothing missing, so no client re-uploads it.
    const created = await ta.service.createInvoice(signedInvoice('example.com/late', '1.0.0', [{ name: 'p', data }]));
    missing = created.missing.map((l) => l.sha256);
  });
  const report = await collectGarbage(index, ta.parcels, { graceMs: HOUR, now: later });
  t.same(missing, [], 'the create found the parcel stored');
  t.match(report, { removed: 0, kept: 1 }, 'the re-check after hiding saw the invoice and restored the parcel');
  const res = await ta.app.inject({ method: 'GET', url: `/v1/_i/example.com/late/1.0.0@${sha}` });
  t.equal(res.statusCode, 200);
  t.ok(res.rawPayload.equals(data), 'the parcel serves its bytes');
});

t.test('an invoice created and uploaded while the parcel is hidden keeps it', async (t) => {
  const ta = await makeTestApp(t);
  const data = randomBytes(4000);
  const sha = await storeParcel(ta, data);
  let missing: string[] | undefined;
  let upload: number | undefined;
  const index = hookedIndex(ta.index, sha, 'before', async (call) => {
    if (call !== 2) return;
    // The second look-up runs while the parcel is hidden: the create is told it is missing...
    const created = await ta.service.createInvoice(signedInvoice('example.com/during', '1.0.0', [{ name: 'p', data }]));
    missing = created.missing.map((l) => l.sha256);
    // ...and the client uploads it.
    upload = (await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/during/1.0.0@${sha}`, payload: data })).statusCode;
  });
  const report = await collectGarbage(index, ta.parcels, { graceMs: HOUR, now: later });
  t.same(missing, [sha], 'the create was told the parcel is missing');
  t.equal(upload, 200, 'the upload stored it');
  t.match(report, { removed: 0, kept: 1 });
  const res = await ta.app.inject({ method: 'GET', url: `/v1/_i/example.com/during/1.0.0@${sha}` });
  t.equal(res.statusCode, 200);
  t.ok(res.rawPayload.equals(data), 'the parcel is there once, intact');
});

t.test('gc racing creates and uploads that need its candidates: no invoice loses a parcel', async (t) => {
  const ta = await makeTestApp(t);
  const parcels = Array.from({ length: 24 }, (_, i) => Buffer.from(`orphan ${i} ${randomBytes(8).toString('hex')}`));
  for (const data of parcels) await storeParcel(ta, data);
  const pushes = parcels.map(async (data, i) => {
    const version = `1.0.${i}`;
    const { missing } = await ta.service.createInvoice(signedInvoice('example.com/race', version, [{ name: 'p', data }]));
    if (missing.length === 0) return;
    const res = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/race/${version}@${sha256(data)}`, payload: data });
    // 409: a restore put it back first.
    if (res.statusCode !== 200 && res.statusCode !== 409) throw new Error(`upload of ${version}: ${res.statusCode} ${res.body}`);
  });
  const [report] = await Promise.all([collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later }), ...pushes]);
  t.equal(report.failures.length, 0, JSON.stringify(report.failures));
  for (const [i, data] of parcels.entries()) {
    const res = await ta.app.inject({ method: 'GET', url: `/v1/_i/example.com/race/1.0.${i}@${sha256(data)}` });
    t.equal(res.statusCode, 200, `1.0.${i} has its parcel`);
  }
  t.match(await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later }), { removed: 0, referenced: parcels.length });
});

/** Uploads `data` over OCI into `name` (monolithic POST): the blob is linked there. */
function ociUpload(ta: TestApp, name: string, data: Buffer) {
  return ta.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/?digest=sha256:${sha256(data)}`, headers: { 'content-type': 'application/octet-stream' }, payload: data });
}

t.test('a blob linked in a repository within the grace period is kept though no invoice lists it; once the link is older, it goes with its links', async (t) => {
  const ta = await makeTestApp(t);
  const data = randomBytes(2000);
  t.equal((await ociUpload(ta, 'example.com/linked', data)).statusCode, 201);
  const sha = sha256(data);
  // Pushed again 30 minutes before the collection ("two hours later"): its link is that young.
  await ta.index.linkOciBlob({ name: 'example.com/linked', sha256: sha, linkedAt: later() - 30 * 60 * 1000 });
  const kept = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later });
  t.match(kept, { scanned: 1, young: 0, linked: 1, removed: 0, linksRemoved: 0 }, 'the parcel is past the grace period, its link is not');
  t.equal((await ta.app.inject({ method: 'GET', url: `/v2/example.com/linked/blobs/sha256:${sha}` })).statusCode, 200, 'still served');

  const evenLater = (): number => later() + HOUR;
  const dry = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: evenLater, dryRun: true });
  t.match(dry, { linked: 0, removed: 1, linksRemoved: 1 }, 'a dry run counts the links that would go');
  t.equal((await ta.index.ociBlobLinks(sha)).length, 1, 'and removes none');
  const removed = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: evenLater });
  t.match(removed, { linked: 0, removed: 1, linksRemoved: 1, failures: [] });
  t.same(await ta.index.ociBlobLinks(sha), [], 'its links went with it');
  t.equal((await ta.app.inject({ method: 'GET', url: `/v2/example.com/linked/blobs/sha256:${sha}` })).statusCode, 404);
});

t.test('a link written while the candidate is hidden keeps it (the second look-up reads links too)', async (t) => {
  const ta = await makeTestApp(t);
  const data = randomBytes(3000);
  const sha = await storeParcel(ta, data);
  const index = hookedIndex(ta.index, sha, 'before', async (call) => {
    if (call === 2) await ta.index.linkOciBlob({ name: 'example.com/during', sha256: sha, linkedAt: later() });
  });
  const report = await collectGarbage(index, ta.parcels, { graceMs: HOUR, now: later });
  t.match(report, { removed: 0, kept: 1 }, 'restored');
  t.equal(await ta.parcels.has(sha), true);
});

t.test('an upload that verified a stored blob which is then collected before its link is written fails, and succeeds sent again', async (t) => {
  const ta = await makeTestApp(t);
  const data = randomBytes(3000);
  const sha = await storeParcel(ta, data);
  let collected: object | undefined;
  const racing = new Proxy(ta.index, {
    get(target, prop, receiver) {
      if (prop !== 'linkOciBlob' || collected !== undefined) return Reflect.get(target, prop, receiver) as unknown;
      return async (link: Parameters<InvoiceIndex['linkOciBlob']>[0]) => {
        // The bytes were hashed against the stored blob; a collector removes it before the link.
        collected = await collectGarbage(target, ta.parcels, { graceMs: HOUR, now: later });
        return target.linkOciBlob(link);
      };
    },
  });
  const racingApp = await makeTestApp(t, { dir: ta.dir, openIndex: () => Promise.resolve(racing) });
  const res = await ociUpload(racingApp, 'example.com/race', data);
  t.match(collected, { removed: 1 }, 'the collector removed the blob');
  t.equal(res.statusCode, 503, 'the upload is not acknowledged for a blob that is gone');
  t.equal((JSON.parse(res.body) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAVAILABLE', 'the CNCF registry\'s code for a 503');
  t.equal(res.headers['retry-after'], '1');
  t.equal((await ta.app.inject({ method: 'GET', url: `/v2/example.com/race/blobs/sha256:${sha}` })).statusCode, 404);
  t.equal((await ociUpload(racingApp, 'example.com/race', data)).statusCode, 201, 'sent again');
  const got = await ta.app.inject({ method: 'GET', url: `/v2/example.com/race/blobs/sha256:${sha}` });
  t.equal(got.statusCode, 200);
  t.ok(got.rawPayload.equals(data));
});

t.test('links older than the grace period whose blob is not stored are pruned; younger ones stay', async (t) => {
  const ta = await makeTestApp(t);
  const gone = 'f'.repeat(64);
  const young = 'e'.repeat(64);
  const stored = await storeParcel(ta, randomBytes(100));
  await ta.index.linkOciBlob({ name: 'example.com/dangling', sha256: gone, linkedAt: Date.now() });
  await ta.index.linkOciBlob({ name: 'example.com/other', sha256: gone, linkedAt: Date.now() });
  await ta.index.linkOciBlob({ name: 'example.com/dangling', sha256: young, linkedAt: later() });
  const dry = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later, dryRun: true });
  t.match(dry, { removed: 1, linksRemoved: 2 });
  t.equal((await ta.index.ociBlobLinks(gone)).length, 2, 'a dry run prunes nothing');
  const report = await collectGarbage(ta.index, ta.parcels, { graceMs: HOUR, now: later });
  t.match(report, { removed: 1, linksRemoved: 2, failures: [] });
  t.same(await ta.index.ociBlobLinks(gone), []);
  t.equal((await ta.index.ociBlobLinks(young)).length, 1, 'a young link to a blob not (yet) stored stays');
  t.equal(await ta.parcels.has(stored), false);
});
