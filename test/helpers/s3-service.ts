/**
 * The real S3 service for tests (scripts/services/s3.sh up): its address from
 * BINDLE_TEST_S3_ENDPOINT, credentials from the standard AWS_* variables, and throw-away
 * buckets that are emptied and deleted when the test ends.
 */
import { randomBytes } from 'node:crypto';

import type { S3Client } from '@aws-sdk/client-s3';
import type { Test } from 'tap';

/** Where the test S3 service is. */
export interface S3TestService {
  endpoint: string;
  region: string;
}

/**
 * The S3 service the environment names, or undefined when there is none: then `t` is planned
 * as skipped with the reason, except under CI=true, where a missing service fails `t`.
 */
export function s3TestService(t: Test): S3TestService | undefined {
  const endpoint = process.env.BINDLE_TEST_S3_ENDPOINT;
  if (endpoint !== undefined && endpoint !== '') return { endpoint, region: process.env.AWS_REGION ?? 'us-east-1' };
  const reason = 'BINDLE_TEST_S3_ENDPOINT is not set (start S3 with `scripts/services/s3.sh up` and export what it prints)';
  if (process.env.CI === 'true') t.fail(`CI=true needs the S3 service: ${reason}`);
  else t.plan(0, reason);
  return undefined;
}

/** A client for the test service, with the settings the store uses; destroyed at teardown. */
export async function s3TestClient(t: Test, service: S3TestService): Promise<S3Client> {
  const { S3Client } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: service.endpoint,
    region: service.region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  t.teardown(() => client.destroy());
  return client;
}

/** Creates a bucket of its own for `t`; at teardown its objects and uploads go, then it does. */
export async function s3TestBucket(t: Test, client: S3Client): Promise<string> {
  const sdk = await import('@aws-sdk/client-s3');
  const bucket = `bindle-test-${randomBytes(6).toString('hex')}`;
  await client.send(new sdk.CreateBucketCommand({ Bucket: bucket }));
  t.teardown(async () => {
    await emptyS3Prefix(client, bucket, '');
    await client.send(new sdk.DeleteBucketCommand({ Bucket: bucket }));
  });
  return bucket;
}

/** Removes every object and aborts every multipart upload under `prefix` ('' for the whole bucket). */
export async function emptyS3Prefix(client: S3Client, bucket: string, prefix: string): Promise<void> {
  const sdk = await import('@aws-sdk/client-s3');
  for (let round = 0; round < 100; round++) {
    const uploads = await client.send(new sdk.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    const objects = await client.send(new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const pending = uploads.Uploads ?? [];
    const keys = (objects.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
    if (pending.length === 0 && keys.length === 0) return;
    for (const upload of pending) {
      await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    }
    if (keys.length > 0) await client.send(new sdk.DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
  }
}

/** The server's `--parcels` spec for `prefix` of `bucket` on the test service. */
export function s3ParcelsSpec(service: S3TestService, bucket: string, prefix: string): string {
  return `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(service.endpoint)}&region=${service.region}&forcePathStyle=true`;
}
