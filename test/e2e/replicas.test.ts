/**
 * Three real `bindle-server` processes on one PostgreSQL index and one S3 bucket (the scale-out
 * deployment): racing creates of one invoice spread over the replicas have exactly one winner; an
 * upload whose replica is killed -9 mid-body leaves nothing visible and succeeds when retried on
 * another; a yank through one replica is refused by the others' GETs; every replica serves the
 * same host keys. Needs BINDLE_TEST_POSTGRES_URL and BINDLE_TEST_S3_ENDPOINT (skipped without them,
 * failed under CI=true).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { freshDatabase, postgresUrl } from '../helpers/postgres.js';
import { s3ParcelsSpec, s3TestBucket, s3TestClient, s3TestService } from '../helpers/s3-service.js';
import { createHostKeys, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const pgUrl = postgresUrl(t);
// Each helper plans the file as skipped when its service is absent: ask the second only when the first is there.
const s3 = pgUrl === undefined ? undefined : s3TestService(t);


/** Sends the first `sent` bytes of a `total`-byte parcel upload and leaves the request open. */
function partialUpload(url: string, total: number, sent: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', headers: { 'content-length': String(total) } });
    req.on('error', () => {});
    req.write(sent, () => resolve());
  });
}

async function getStatus(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

if (pgUrl !== undefined && s3 !== undefined) await t.test('three replicas on one PostgreSQL index and one S3 bucket', async (t) => {
  const client = await s3TestClient(t, s3);
  const bucket = await s3TestBucket(t, client);
  const indexUrl = await freshDatabase(t, pgUrl);
  const dir = t.testdir();
  const hostKeys = createHostKeys(t, dir);
  const parcelsSpec = s3ParcelsSpec(s3, bucket, 'replicas');
  const args = ['--index', indexUrl, '--parcels', parcelsSpec, '--signing-keys', hostKeys, '--keyring', vec('scaffolds', 'keys', 'keyring.toml')];
  /** Replicas belong to this test, also one restarted in a subtest: later subtests use it. */
  const startReplica = (): Promise<ServerProcess> => startServerProcess(t, { args });
  const replicas: ServerProcess[] = [];
  for (let i = 0; i < 3; i++) replicas.push(await startReplica());
  const at = (i: number): ServerProcess => {
    const r = replicas[i % replicas.length];
    if (r === undefined) throw new Error('no replica');
    return r;
  };

  t.test('every replica serves the same host keys', async (t) => {
    const keys = await Promise.all(replicas.map(async (r) => (await fetch(`${r.url}bindle-keys`)).text()));
    t.match(keys[0], /role/);
    t.same(new Set(keys).size, 1, 'identical /bindle-keys');
  });

  const data = randomBytes(3 << 20);
  const invoice = signedInvoice('example.com/replicated', '1.0.0', [{ name: 'blob.bin', data, mediaType: 'application/octet-stream' }]);
  const parcelPath = `_i/example.com/replicated/1.0.0@${sha256(data)}`;

  t.test('64 concurrent creates of one invoice over three replicas: one winner', async (t) => {
    const body = renderInvoice(invoice);
    const statuses = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const res = await fetch(`${at(i).url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body });
        await res.arrayBuffer();
        return res.status;
      }),
    );
    t.equal(statuses.filter((s) => s === 201 || s === 202).length, 1, 'exactly one create succeeds');
    t.equal(statuses.filter((s) => s === 409).length, 63, 'the other 63 are 409');
    for (const r of replicas) {
      const res = await fetch(`${r.url}_q?q=example.com/replicated`, { headers: { accept: 'application/json' } });
      t.equal(((await res.json()) as { total: number }).total, 1, 'one record, seen by every replica');
    }
  });

  t.test('an upload whose replica is killed -9 is retried on another', async (t) => {
    const victim = at(0);
    await partialUpload(`${victim.url}${parcelPath}`, data.length, data.subarray(0, 1 << 20));
    victim.child.kill('SIGKILL');
    await victim.stop();
    t.equal(await getStatus(`${at(1).url}${parcelPath}`), 404, 'nothing of the interrupted upload is visible');
    const res = await fetch(`${at(1).url}${parcelPath}`, { method: 'POST', body: data });
    t.equal(res.status, 200, await res.text());
    const got = await fetch(`${at(2).url}${parcelPath}`);
    t.equal(got.status, 200);
    t.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(data), 'another replica serves the whole parcel');
    replicas[0] = await startReplica();
  });

  t.test('a yank through one replica is refused by the others', async (t) => {
    const invoicePath = '_i/example.com/replicated/1.0.0';
    for (const r of replicas) t.equal(await getStatus(`${r.url}${invoicePath}`), 200, 'served before the yank (and cached)');
    const yanked = await fetch(`${at(0).url}${invoicePath}`, { method: 'DELETE' });
    t.equal(yanked.status, 200, await yanked.text());
    const started = Date.now();
    for (const r of replicas.slice(1)) {
      let status = await getStatus(`${r.url}${invoicePath}`);
      while (status !== 403 && Date.now() - started < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        status = await getStatus(`${r.url}${invoicePath}`);
      }
      t.equal(status, 403, 'refused as yanked');
    }
    t.comment(`the other replicas refused the yanked invoice after ${Date.now() - started} ms`);
  });
});
