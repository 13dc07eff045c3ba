/**
 * The HTTP test layer's backend pairs (test/helpers/test-backends.ts): BINDLE_TEST_BACKENDS is
 * validated, and on postgres+s3 (needs BINDLE_TEST_POSTGRES_URL and BINDLE_TEST_S3_ENDPOINT)
 * two apps on one directory share one schema and prefix, which are gone once both released.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { sha256 } from '../helpers/bindles.js';
import { postgresUrl } from '../helpers/postgres.js';
import { s3TestClient, s3TestService } from '../helpers/s3-service.js';
import { BACKENDS_VARIABLE, backendPair, sharedStorageNames, TEST_BUCKET, testStorage } from '../helpers/test-backends.js';

/** Runs `fn` with BINDLE_TEST_BACKENDS set to `value` (unset for undefined), restoring it after. */
async function withPair<T>(value: string | undefined, fn: () => Promise<T> | T): Promise<T> {
  const before = process.env[BACKENDS_VARIABLE];
  if (value === undefined) delete process.env.BINDLE_TEST_BACKENDS;
  else process.env[BACKENDS_VARIABLE] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.BINDLE_TEST_BACKENDS;
    else process.env[BACKENDS_VARIABLE] = before;
  }
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-backends-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('BINDLE_TEST_BACKENDS names the pair; sqlite+file is the default', async (t) => {
  t.equal(await withPair(undefined, backendPair), 'sqlite+file');
  t.equal(await withPair('', backendPair), 'sqlite+file');
  t.equal(await withPair('postgres+s3', backendPair), 'postgres+s3');
  await t.rejects(withPair('mysql+nfs', backendPair), /BINDLE_TEST_BACKENDS=mysql\+nfs: expected one of sqlite\+file, postgres\+s3/);
});

t.test('sqlite+file keeps index and parcels in the directory', async (t) => {
  const dir = tempDir(t);
  const storage = await withPair('sqlite+file', () => testStorage(dir));
  t.equal(storage.parcelDirectory, dir);
  const parcels = await storage.openParcels();
  const data = Buffer.from('on disk');
  await parcels.put(sha256(data), data.length, Readable.from([data]));
  t.ok(await parcels.has(sha256(data)));
  const index = await storage.openIndex();
  t.ok(existsSync(join(dir, 'index.sqlite')), 'the SQLite index is in the directory');
  t.ok(existsSync(join(dir, 'parcels')), 'and so are the parcels');
  await index.close();
  await parcels.close();
  await storage.release();
});

t.test('postgres+s3: apps on one directory share a schema and prefix, removed after the last release', async (t) => {
  const url = postgresUrl(t);
  const service = url === undefined ? undefined : s3TestService(t);
  if (url === undefined || service === undefined) return;
  const s3 = await s3TestClient(t, service);
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const dir = tempDir(t);
  const [first, second] = await withPair('postgres+s3', () => Promise.all([testStorage(dir), testStorage(dir)]));
  t.equal(first.parcelDirectory, undefined, 'no directory to inspect on S3');
  const index = await first.openIndex();
  const parcels = await first.openParcels();
  const replica = await second.openParcels();
  const data = Buffer.from('in the bucket');
  await parcels.put(sha256(data), data.length, Readable.from([data]));
  t.ok(await replica.has(sha256(data)), "the second app sees the first one's parcel");
  const { schema, prefix } = sharedStorageNames(dir);
  const schemaExists = async (): Promise<boolean> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;
    } finally {
      await client.end();
    }
  };
  const objects = async (): Promise<number> => (await s3.send(new ListObjectsV2Command({ Bucket: TEST_BUCKET, Prefix: prefix }))).KeyCount ?? 0;
  await index.close();
  await parcels.close();
  await first.release();
  t.ok(await schemaExists(), 'the schema stays while the second app uses it');
  t.equal(await objects(), 1, 'and so does the parcel');
  await replica.close();
  await second.release();
  t.notOk(await schemaExists(), 'the last release drops the schema');
  t.equal(await objects(), 0, 'and empties the prefix');
});
