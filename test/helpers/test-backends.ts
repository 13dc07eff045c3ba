/**
 * The backend pair the HTTP test layer runs on, picked by BINDLE_TEST_BACKENDS: `sqlite+file`
 * (the default: a SQLite index and a file parcel store in the test app's directory) or
 * `postgres+s3` (a PostgreSQL index in a fresh schema of BINDLE_TEST_POSTGRES_URL and an S3
 * parcel store under a fresh prefix of one test bucket on BINDLE_TEST_S3_ENDPOINT). Apps made on
 * one directory (replicas) share one schema and prefix; both are removed once the last of them
 * is released. `npm run test:http-backends` runs test/http/ on `postgres+s3`.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import type { InvoiceIndex } from '../../server/storage/invoice-index.js';
import type { ParcelStore } from '../../server/storage/parcel-store.js';
import { SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';
import { dropSchemas, POSTGRES_URL_VARIABLE } from './postgres.js';
import { emptyS3Prefix } from './s3-service.js';

export const BACKENDS_VARIABLE = 'BINDLE_TEST_BACKENDS';
export const BACKEND_PAIRS = ['sqlite+file', 'postgres+s3'] as const;
export type BackendPair = (typeof BACKEND_PAIRS)[number];

/** The one bucket every `postgres+s3` test app keeps its prefix in (created when missing). */
export const TEST_BUCKET = 'bindle-http-tests';

/** The pair BINDLE_TEST_BACKENDS names (default `sqlite+file`); throws on any other value. */
export function backendPair(): BackendPair {
  const value = process.env[BACKENDS_VARIABLE];
  if (value === undefined || value === '') return 'sqlite+file';
  const pair = BACKEND_PAIRS.find((p) => p === value);
  if (pair === undefined) throw new Error(`${BACKENDS_VARIABLE}=${value}: expected one of ${BACKEND_PAIRS.join(', ')}`);
  return pair;
}

/**
 * Storage for one test app in `dir`. Contract: the caller opens the index and the parcel store
 * at most once each, closes them, and then calls release() exactly once.
 */
export interface TestStorage {
  readonly pair: BackendPair;
  /** The file parcel store's directory (its `parcels/` folder is inside); undefined for S3. */
  readonly parcelDirectory: string | undefined;
  openIndex(): Promise<InvoiceIndex>;
  openParcels(): Promise<ParcelStore>;
  /** Done with the storage: the last app on `dir` to release it removes its schema and prefix. */
  release(): Promise<void>;
}

/** Open apps per directory on `postgres+s3`: the schema and prefix go when this drops to 0. */
const users = new Map<string, number>();

/** The storage of the configured pair for a test app in `dir`. */
export async function testStorage(dir: string): Promise<TestStorage> {
  if (backendPair() === 'sqlite+file') {
    return {
      pair: 'sqlite+file',
      parcelDirectory: dir,
      openIndex: async () => SqliteInvoiceIndex.open(join(dir, 'index.sqlite')),
      openParcels: () => FileParcelStore.open(dir),
      release: async () => undefined,
    };
  }
  return sharedStorage(dir);
}

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${BACKENDS_VARIABLE}=postgres+s3 needs ${name} (scripts/services/test-services.sh up prints it)`);
  }
  return value;
}

/** The PostgreSQL schema and the key prefix in TEST_BUCKET of the postgres+s3 apps on `dir`. */
export function sharedStorageNames(dir: string): { schema: string; prefix: string } {
  const tag = createHash('sha256').update(dir).digest('hex').slice(0, 24);
  return { schema: `http_${tag}`, prefix: `http-${tag}/` };
}

async function sharedStorage(dir: string): Promise<TestStorage> {
  const url = required(POSTGRES_URL_VARIABLE);
  const endpoint = required('BINDLE_TEST_S3_ENDPOINT');
  const region = process.env.AWS_REGION ?? 'us-east-1';
  const { schema, prefix } = sharedStorageNames(dir);
  const sdk = await import('@aws-sdk/client-s3');
  const client: S3Client = new sdk.S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const count = users.get(dir) ?? 0;
  users.set(dir, count + 1);
  if (count === 0) {
    await ensureBucket(client);
    // What a killed earlier run on the same directory name may have left.
    await dropSchemas(url, [schema]);
    await emptyS3Prefix(client, TEST_BUCKET, prefix);
  }
  return {
    pair: 'postgres+s3',
    parcelDirectory: undefined,
    openIndex: async () => {
      const { PostgresInvoiceIndex } = await import('../../server/storage/postgres-invoice-index.js');
      return PostgresInvoiceIndex.open(url, { schema, poolSize: 4 });
    },
    openParcels: async () => {
      const { S3ParcelStore } = await import('../../server/storage/s3-parcel-store.js');
      return S3ParcelStore.open({ bucket: TEST_BUCKET, prefix, endpoint, region, forcePathStyle: true });
    },
    release: async () => {
      const left = (users.get(dir) ?? 1) - 1;
      try {
        if (left === 0) {
          users.delete(dir);
          await dropSchemas(url, [schema]);
          await emptyS3Prefix(client, TEST_BUCKET, prefix);
        } else {
          users.set(dir, left);
        }
      } finally {
        client.destroy();
      }
    },
  };
}

/** Creates the test bucket unless it exists (several test files may race to create it). */
async function ensureBucket(client: S3Client): Promise<void> {
  const sdk = await import('@aws-sdk/client-s3');
  try {
    await client.send(new sdk.CreateBucketCommand({ Bucket: TEST_BUCKET }));
  } catch (err) {
    const name = err instanceof Error ? err.name : '';
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
  }
}
