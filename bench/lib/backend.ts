/**
 * The storage backends a benchmark server runs on. `sqlite+file` (the server's default: its
 * data directory) always; `postgres+s3` too when BINDLE_BENCH_BACKENDS lists it
 * (`sqlite+file,postgres+s3`), on the services whose addresses `scripts/services/postgres.sh up`
 * and `s3.sh up` print (BINDLE_TEST_POSTGRES_URL, BINDLE_TEST_S3_ENDPOINT, AWS_*). Each server
 * on `postgres+s3` gets a fresh database and a fresh key prefix in the bucket `bindle-bench`,
 * removed when it is released; its figures are reported beside those of `sqlite+file`.
 */
import { randomBytes } from 'node:crypto';
import type { CaseResult } from './context.js';
import { s3Client, type S3Target } from './s3-direct.js';
import { spawnServer, type BenchServer, type SpawnOptions } from './server.js';

export type BackendName = 'sqlite+file' | 'postgres+s3';

/** What a server needs to run on a backend, and how to remove its storage afterwards. */
export interface BackendStorage {
  /** bindle-server flags (none for sqlite+file). */
  readonly args: string[];
  /** The PostgreSQL URL of the server's fresh database (for seeding it); undefined for sqlite+file. */
  readonly index: string | undefined;
  /** Where the server keeps its parcels on S3 (for the S3 service's own rates); undefined for sqlite+file. */
  readonly s3: S3Target | undefined;
  release(): Promise<void>;
}

const VARIABLE = 'BINDLE_BENCH_BACKENDS';
const BUCKET = 'bindle-bench';

/** The backends of this run, sqlite+file first; throws on an unknown name or a missing service. */
export function benchBackends(): BackendName[] {
  const names = (process.env[VARIABLE] ?? 'sqlite+file').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const out: BackendName[] = ['sqlite+file'];
  for (const name of names) {
    if (name !== 'sqlite+file' && name !== 'postgres+s3') throw new Error(`${VARIABLE}: unknown backend ${JSON.stringify(name)} (sqlite+file, postgres+s3)`);
    if (!out.includes(name)) out.push(name);
  }
  if (out.includes('postgres+s3')) {
    for (const needed of ['BINDLE_TEST_POSTGRES_URL', 'BINDLE_TEST_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      if (process.env[needed] === undefined) throw new Error(`${VARIABLE}=postgres+s3 needs ${needed} (scripts/services/test-services.sh up prints it)`);
    }
  }
  return out;
}

/** A figure id and title for `backend`: unchanged for sqlite+file, marked for the others. */
export function onBackend(backend: BackendName, id: string, title: string): { id: string; title: string } {
  return backend === 'sqlite+file' ? { id, title } : { id: `${id}.${backend}`, title: `${title} [${backend}]` };
}

/** Runs a case on every backend of this run in turn (benchBackends order); their figures and notes together. */
export async function onEveryBackend(run: (backend: BackendName) => Promise<CaseResult>): Promise<CaseResult> {
  const figures: CaseResult['figures'] = [];
  const notes: string[] = [];
  for (const backend of benchBackends()) {
    const result = await run(backend);
    figures.push(...result.figures);
    notes.push(...(result.notes ?? []));
  }
  return { figures, notes };
}

/** A file-name-safe form of the backend's name, e.g. for scratch directories. */
export function backendSlug(backend: BackendName): string {
  return backend.replace('+', '-');
}

/** A scratch directory name for `backend`: `name` as it is for sqlite+file, `<name>-<slug>` for the others. */
export function onBackendDir(backend: BackendName, name: string): string {
  return backend === 'sqlite+file' ? name : `${name}-${backendSlug(backend)}`;
}

/** How often, and how far apart (ms), releasing a database tries DROP again while it is refused. */
const DROP_TRIES = 60;
const DROP_RETRY_MS = 1000;

/**
 * Drops a bench database with (FORCE). That ends our own sessions, but it is refused
 * (insufficient_privilege, 42501) while a session of another role is in the database — seen
 * right after a seed of 100,000 invoices, when autovacuum works there — so it is tried again
 * until that has gone.
 */
async function dropDatabase(client: import('pg').Client, database: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      return;
    } catch (err) {
      const code = err instanceof Error && 'code' in err ? err.code : undefined;
      if (code !== '42501' || attempt >= DROP_TRIES) throw err;
      await new Promise((resolve) => setTimeout(resolve, DROP_RETRY_MS));
    }
  }
}

/** Fresh storage on `backend` for one server. */
export async function backendStorage(backend: BackendName): Promise<BackendStorage> {
  if (backend === 'sqlite+file') return { args: [], index: undefined, s3: undefined, release: () => Promise.resolve() };
  const tag = randomBytes(6).toString('hex');
  const serverUrl = new URL(process.env.BINDLE_TEST_POSTGRES_URL ?? '');
  const database = `bench_${tag}`;
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: serverUrl.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
  const indexUrl = new URL(serverUrl);
  indexUrl.pathname = `/${database}`;

  const endpoint = process.env.BINDLE_TEST_S3_ENDPOINT ?? '';
  const region = process.env.AWS_REGION ?? 'us-east-1';
  const { sdk, client: s3 } = await s3Client({ endpoint, region });
  try {
    await s3.send(new sdk.CreateBucketCommand({ Bucket: BUCKET }));
  } catch (err) {
    const name = err instanceof Error ? err.name : '';
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
  }
  const prefix = `run-${tag}`;
  const parcels = `s3://${BUCKET}/${prefix}?${new URLSearchParams({ endpoint, region, forcePathStyle: 'true' }).toString()}`;
  return {
    args: ['--index', indexUrl.toString(), '--parcels', parcels],
    index: indexUrl.toString(),
    s3: { endpoint, region, bucket: BUCKET, prefix },
    release: async () => {
      try {
        for (let token: string | undefined, more = true; more; ) {
          const page = await s3.send(new sdk.ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/`, ContinuationToken: token }));
          const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
          if (keys.length > 0) await s3.send(new sdk.DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys } }));
          token = page.NextContinuationToken;
          more = page.IsTruncated === true && token !== undefined;
        }
      } finally {
        s3.destroy();
      }
      const dropper = new pg.Client({ connectionString: serverUrl.toString() });
      await dropper.connect();
      try {
        await dropDatabase(dropper, database);
      } finally {
        await dropper.end();
      }
    },
  };
}

/**
 * Runs `body` with a bindle-server on `dir` and fresh storage on `backend` (given to `body` too;
 * `prepare` runs on the storage before the server starts, e.g. to seed it; `spawn` says how the
 * server is started); then stops the server and releases the storage, also on failure.
 */
export async function withServerOn<T>(
  backend: BackendName,
  dir: string,
  body: (server: BenchServer, storage: BackendStorage) => Promise<T>,
  prepare?: (storage: BackendStorage) => Promise<void>,
  spawn: SpawnOptions = {},
): Promise<T> {
  const storage = await backendStorage(backend);
  try {
    await prepare?.(storage);
    const server = await spawnServer(dir, storage.args, spawn);
    try {
      return await body(server, storage);
    } finally {
      await server.stop();
    }
  } finally {
    await storage.release();
  }
}
