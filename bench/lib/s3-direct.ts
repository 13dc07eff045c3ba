/**
 * The S3 service's own transfer rates: the ceiling of the postgres+s3 backend's parcel
 * transfers, which all pass through that service. Objects are PUT and read straight from it
 * with the AWS SDK, configured as the server's S3 parcel store configures its client (path
 * style, checksums only where S3 requires them), under the bench server's own key prefix (so
 * that releasing its storage removes them too).
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { mapLimit } from '../../core/concurrency.js';

/** Where a bench server on postgres+s3 keeps its parcels (bench/lib/backend.ts). */
export interface S3Target {
  endpoint: string;
  region: string;
  bucket: string;
  /** The server's key prefix, without a trailing slash. */
  prefix: string;
}

type Sdk = typeof import('@aws-sdk/client-s3');

/**
 * Longest a request to the S3 service may wait for its connection, and then stay idle, before it
 * fails: a stalled service (e.g. a full test store) fails the case instead of holding the run
 * until its watchdog.
 */
export const S3_TIMEOUTS = { connectionTimeout: 10_000, socketTimeout: 120_000 } as const;

/** An SDK client for the service at `target`, set up as the server's store sets up its own (and S3_TIMEOUTS). */
export async function s3Client(target: Pick<S3Target, 'endpoint' | 'region'>): Promise<{ sdk: Sdk; client: InstanceType<Sdk['S3Client']> }> {
  const sdk = await import('@aws-sdk/client-s3');
  const client = new sdk.S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: S3_TIMEOUTS,
  });
  return { sdk, client };
}

/** Runs `body` with an SDK client for `target`, destroyed afterwards. */
async function withClient<T>(target: S3Target, body: (client: InstanceType<Sdk['S3Client']>, sdk: Sdk) => Promise<T>): Promise<T> {
  const { sdk, client } = await s3Client(target);
  try {
    return await body(client, sdk);
  } finally {
    client.destroy();
  }
}

/** A fresh key under the target's prefix, outside the store's own folders. */
function directKey(target: S3Target, name: string): string {
  return `${target.prefix}/bench-direct/${randomBytes(8).toString('hex')}-${name}`;
}

/** PUTs each of `blobs` to a key of its own, `concurrency` at a time. */
async function putAll(target: S3Target, client: InstanceType<Sdk['S3Client']>, sdk: Sdk, blobs: readonly Buffer[], concurrency: number): Promise<void> {
  await mapLimit(blobs, concurrency, (data, i) =>
    client.send(new sdk.PutObjectCommand({ Bucket: target.bucket, Key: directKey(target, `${i}`), Body: data, ContentLength: data.length })),
  );
}

/**
 * Objects per second of `blobs` PUT straight to the service, `concurrency` at a time, each to
 * a key of its own (one PutObject each, as the store's put of a small parcel ends). The clock
 * starts after a first round of `concurrency` PUTs has opened the client's connections, as the
 * server's client has its own.
 */
export async function s3PutRate(target: S3Target, blobs: readonly Buffer[], concurrency: number): Promise<number> {
  return withClient(target, async (client, sdk) => {
    await putAll(target, client, sdk, blobs.slice(0, concurrency), concurrency);
    const started = performance.now();
    await putAll(target, client, sdk, blobs, concurrency);
    return blobs.length / ((performance.now() - started) / 1000);
  });
}

/** MB/s of one PutObject of `data` straight to the service (timed after a PUT of one byte has opened a connection). */
export async function s3PutMBps(target: S3Target, data: Buffer): Promise<number> {
  return withClient(target, async (client, sdk) => {
    await putAll(target, client, sdk, [data.subarray(0, 1)], 1);
    const started = performance.now();
    await client.send(new sdk.PutObjectCommand({ Bucket: target.bucket, Key: directKey(target, 'big'), Body: data, ContentLength: data.length }));
    return data.length / 1e6 / ((performance.now() - started) / 1000);
  });
}

/**
 * A reader of the object `key` straight from the service: each call GETs it `times` times in
 * a row, checks each body's length against `size`, and resolves with the rate over all of
 * them (MB/s). `close` destroys its client.
 */
export async function s3Reader(target: S3Target, key: string, size: number): Promise<{ read: (times: number) => Promise<number>; close: () => void }> {
  const { sdk, client } = await s3Client(target);
  const read = async (times: number): Promise<number> => {
    const started = performance.now();
    for (let i = 0; i < times; i++) {
      const reply = await client.send(new sdk.GetObjectCommand({ Bucket: target.bucket, Key: key }));
      let bytes = 0;
      for await (const chunk of reply.Body as Readable) bytes += (chunk as Buffer).length;
      if (bytes !== size) throw new Error(`S3 GET ${key}: ${bytes} of ${size} bytes`);
    }
    return (size * times) / 1e6 / ((performance.now() - started) / 1000);
  };
  return { read, close: () => client.destroy() };
}
