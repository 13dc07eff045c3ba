/**
 * S3ParcelStore: the ParcelStore on an S3 bucket (AWS S3, Ceph RGW, or any S3-compatible
 * service), for servers that share their parcels between replicas. The AWS SDK is imported
 * only when a store is opened, so a server configured without S3 never loads it.
 *
 * Layout under `<prefix>/`: `parcels/<sha256>` holds a parcel's data (the only keys that are
 * parcels), `claims/<sha256>` a short-lived marker of a multipart upload being completed,
 * `hidden/<sha256>.<random>` the data of a parcel being removed (ParcelStore.remove).
 * Nothing is ever visible under `parcels/` before its size and sha256 were verified:
 * - a parcel up to one part (8 MiB) is received into memory, verified, then written with one
 *   conditional PutObject (`If-None-Match: *`), so concurrent puts have exactly one winner; up
 *   to REFUSE_UNREAD_ABOVE_BYTES that PutObject is the only request of a new parcel (its 412
 *   tells a stored one), bigger ones are looked up first (HEAD) and refused unread;
 * - a larger parcel streams into a multipart upload (a few parts sent at once) while it is
 *   hashed; the upload is completed only once the data checked out, and aborted on any failure.
 *   Since not every
 *   S3 service honours conditions on CompleteMultipartUpload, the completing put first takes a
 *   claim (a conditional PutObject of `claims/<sha256>`), checks the parcel is still absent,
 *   completes, and drops the claim; a put finding a claim waits for the parcel to appear.
 * Uploads a killed process left (multipart uploads, claims, hidden data) are removed by age, at open and by
 * a periodic sweep, like the file store's temp files; credentials come from the standard AWS_*
 * variables (the SDK's default chain).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import type * as S3 from '@aws-sdk/client-s3';

import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { isSha256Hex } from '../../core/ids/bindle-id.js';
import {
  alreadyExists,
  assertDigest,
  missingFrom,
  REFUSE_UNREAD_ABOVE_BYTES,
  confirmRemoval,
  assertDigestMatches,
  assertExpectedSize,
  assertRangeShape,
  rangeNotSatisfiable,
  stagingSettings,
  Sweeper,
} from './parcel-store.js';
import type { ByteRange, ParcelStat, ParcelStore, PutResult, RemoveOutcome, StagingOptions, StoredParcel } from './parcel-store.js';
import { processUploadBudget, receiveParcel, type ReceiveOptions, type UploadSink } from './parcel-upload.js';
import type { BufferBudget } from './buffer-budget.js';
import { GatheredPart, processPartSpool, type PartSpool } from './part-spool.js';
import { PartWriter } from './s3-parts.js';

/** Where the store keeps its parcels, and how it reaches the service. */
export interface S3ParcelStoreOptions extends StagingOptions, ReceiveOptions {
  bucket: string;
  /** Key prefix of everything the store writes ('' for the bucket's root). */
  prefix: string;
  /** The service's URL; the SDK's AWS endpoint for the region when absent. */
  endpoint?: string;
  region: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`), which most self-hosted services need. */
  forcePathStyle: boolean;
  /**
   * Default CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS and REQUEST_DEADLINE_MS (shorter in tests; the
   * deadline also from an s3:// spec's `requestDeadline`).
   */
  timeouts?: { connectMs?: number; idleMs?: number; deadlineMs?: number };
  /**
   * Where uploads keep the parts they are filling (a multipart upload's parts, a single PutObject's
   * whole parcel): in memory within its cap, past it in spool files (default: processPartSpool,
   * the one every store in the process shares unless given its own, like the upload budget).
   */
  partSpool?: PartSpool;
}

/**
 * Longest a request waits to connect to the S3 service, and then for its socket to move (the
 * request sent, the reply's headers and body received), before it fails; the SDK retries it (3
 * attempts in all), then the store reports `unavailable`. Without them a stalled service held
 * every request to it for ever, and with them, once 50 were waiting, the SDK's whole socket pool:
 * the replica could no longer reach the service even after it recovered. A download whose reader
 * takes no data for IDLE_TIMEOUT_MS (its stream from S3 paused that long) fails too.
 */
export const CONNECT_TIMEOUT_MS = 5_000;
export const IDLE_TIMEOUT_MS = 30_000;

/**
 * Longest a request may take, its retries included, before the store reports `unavailable`: for
 * every request but a part's upload, a multipart upload's completion and a server-side copy
 * (those move a big parcel's bytes, or may take the service minutes, and are bound by
 * IDLE_TIMEOUT_MS alone). A download's request is bound until its reply's headers come. It is
 * under the Bindle client's 30 s wait for a reply (client/lib/bindle-client.ts,
 * DEFAULT_TIMEOUT_MS), so that a client of a service that stopped answering gets the 503 rather
 * than a timeout of its own: without it, the three attempts each waited out the idle timeout,
 * and a small upload answered after 99 s. The cost: a parcel of up to PART_BYTES is one
 * PutObject, which must now be done within it (0.42 MB/s for the largest); the Bindle client,
 * which waits 30 s for the reply once it has sent the body, gave up on one that took longer
 * than that anyway. A site whose link to the service is slower sets its own deadline with the
 * s3:// spec's `requestDeadline` (server/config/backend-specs.ts); its clients then need a
 * longer wait too (`bindle --timeout`).
 */
export const REQUEST_DEADLINE_MS = 20_000;

/**
 * Runs `request` with an AbortSignal that fires after `ms` (the SDK then ends the attempt under
 * way and makes no more: its error names the deadline).
 */
async function withinDeadline<T>(ms: number, request: (options: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(`no reply within ${ms} ms, retries included`), ms);
  try {
    return await request({ abortSignal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** Parts of a multipart upload: at least S3's 5 MiB minimum; parcels this small are one PutObject. */
const PART_BYTES = 8 << 20;
/** S3 allows 10,000 parts; parts grow past PART_BYTES so that the largest parcel stays below. */
const MAX_PARTS = 9000;
/**
 * Parts of one upload being sent while the next one is received and hashed (memory per upload:
 * this many parts plus the one filling; ./s3-parts.ts).
 */
const PARTS_IN_FLIGHT = 3;
/** Most received bytes an upload hands on at a time (fewer while the upload budget gives smaller batches), each chunk copied into its part. */
const RECEIVE_BATCH_BYTES = 1 << 20;
/** Keys per ListObjectsV2 page (S3's maximum). */
const LIST_PAGE = 1000;
/** A claim older than this (or than the staging age, if shorter) was left by a killed process. */
const CLAIM_STALE_MS = 2 * 60 * 1000;
/** How often a put that found another put's claim checks whether the parcel appeared. */
const CLAIM_POLL_MS = 100;

/** The SDK's parts the store uses (./s3-sdk.ts). */
type S3Module = typeof import('./s3-sdk.js');

/** The HTTP status of an S3 service error, if it is one. */
function s3Status(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const metadata = err.$metadata;
  if (typeof metadata !== 'object' || metadata === null || !('httpStatusCode' in metadata)) return undefined;
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/** The SDK's name of an S3 service error: the service's error code (NoSuchKey, NoSuchBucket, ...) or, for a reply without a body (HEAD), NotFound and the like. */
function s3ErrorName(err: unknown): string | undefined {
  return err instanceof Error && err.name !== 'Error' ? err.name : undefined;
}

/**
 * Whether an S3 error says that the object asked for does not exist: a 404 other than
 * NoSuchBucket. A HEAD's 404 has no body, so it cannot tell a missing bucket from a missing
 * object (see S3ParcelStore.confirmBucket).
 */
function isMissingObject(err: unknown): boolean {
  return s3Status(err) === 404 && s3ErrorName(err) !== 'NoSuchBucket';
}

/**
 * What went wrong with an S3 request, for an operator: a service error's code and HTTP status,
 * then its message when that adds something (some services, Ceph RGW among them, send
 * "UnknownError" for every code); any other failure's message (ECONNREFUSED, a timeout).
 */
function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return JSON.stringify(err);
  const status = s3Status(err);
  if (status === undefined) return err.message;
  const name = s3ErrorName(err) ?? 'error';
  const message = err.message === '' || err.message === name || err.message === 'UnknownError' ? '' : `: ${err.message}`;
  return `${name} (HTTP ${status})${message}`;
}

/** An S3 request that failed unexpectedly, as the store reports it: the service is unavailable. */
function unavailable(what: string, err: unknown): BindleError {
  if (err instanceof BindleError) return err;
  return new BindleError('unavailable', `S3 ${what} failed: ${describeFailure(err)}`, { cause: err });
}

function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

/** A ParcelStore on an S3 bucket. */
/** A listed object's size; a listing without one is not an answer the store can use. */
function sizeOfListed(object: S3._Object): number {
  if (object.Size === undefined) throw unavailable('ListObjectsV2', `an entry without a size (${String(object.Key)})`);
  return object.Size;
}

export class S3ParcelStore implements ParcelStore {
  readonly bucket: string;
  /** '' or the prefix with one trailing slash. */
  readonly prefix: string;
  private readonly parcelsPrefix: string;
  private readonly claimsPrefix: string;
  private readonly hiddenPrefix: string;
  private readonly maxAgeMs: number;
  /** REQUEST_DEADLINE_MS unless the options say otherwise. */
  private readonly deadlineMs: number;
  /** Gives each upload's receive batches. */
  private readonly uploadBudget: BufferBudget;
  private readonly partSpool: PartSpool;
  private readonly puts = new Set<Promise<unknown>>();
  private readonly sweeper: Sweeper;
  private readonly closedMessage: string;
  private closed = false;

  private constructor(
    private readonly sdk: S3Module,
    private readonly client: S3.S3Client,
    options: S3ParcelStoreOptions,
    maxAgeMs: number,
  ) {
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix);
    this.parcelsPrefix = `${this.prefix}parcels/`;
    this.claimsPrefix = `${this.prefix}claims/`;
    this.hiddenPrefix = `${this.prefix}hidden/`;
    this.maxAgeMs = maxAgeMs;
    this.deadlineMs = options.timeouts?.deadlineMs ?? REQUEST_DEADLINE_MS;
    this.uploadBudget = options.uploadBudget ?? processUploadBudget;
    this.partSpool = options.partSpool ?? processPartSpool;
    this.closedMessage = `S3 parcel store ${this.bucket}/${this.prefix} is closed`;
    this.sweeper = new Sweeper((signal) => this.sweepOnce(signal), this.closedMessage);
  }

  /**
   * Connects to the bucket (which must exist: invalid_config otherwise), removes what killed
   * uploads left (see `sweep()`) and, unless `stagingSweepMs` is 0, sweeps again at that
   * interval while open.
   */
  static async open(options: S3ParcelStoreOptions): Promise<S3ParcelStore> {
    const staging = stagingSettings(options);
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new BindleError('invalid_config', 'S3 parcel store: a bucket name is required');
    }
    if (typeof options.region !== 'string' || options.region === '') {
      throw new BindleError('invalid_config', 'S3 parcel store: a region is required');
    }
    if (options.endpoint !== undefined && !URL.canParse(options.endpoint)) {
      throw new BindleError('invalid_config', `S3 parcel store: endpoint ${JSON.stringify(options.endpoint)} is not a URL`);
    }
    const sdk = await import('./s3-sdk.js');
    const client = new sdk.S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      // Checksums only where S3 requires them: the streaming (aws-chunked) form of the SDK's
      // default is refused by some S3 services, and every parcel is sha256-verified anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: options.timeouts?.connectMs ?? CONNECT_TIMEOUT_MS,
        socketTimeout: options.timeouts?.idleMs ?? IDLE_TIMEOUT_MS,
        // No cap on connections to the service (nor has Go's HTTP client, which the distribution
        // registry's S3 driver uses): a parcel being read holds its connection for as long as its
        // client takes to read it, so with the SDK's default of 50, fifty clients that stopped
        // reading held up every other request of the store (uploads, look-ups, other reads),
        // which then failed on the connect timeout. Idle connections kept: the agent's default (256).
        httpAgent: { maxSockets: Infinity },
        httpsAgent: { maxSockets: Infinity },
      },
    });
    const store = new S3ParcelStore(sdk, client, options, staging.stagingMaxAgeMs);
    try {
      await store.send((o) => client.send(new sdk.HeadBucketCommand({ Bucket: options.bucket }), o));
      await store.sweep();
    } catch (err) {
      client.destroy();
      const status = s3Status(err);
      if (status === 404) throw new BindleError('invalid_config', `S3 bucket ${options.bucket} does not exist`, { cause: err });
      if (status === 403) throw new BindleError('invalid_config', `S3 bucket ${options.bucket}: access denied`, { cause: err });
      throw unavailable(`opening bucket ${options.bucket}`, err);
    }
    store.sweeper.start(staging.stagingSweepMs, options.onSweepError);
    return store;
  }

  /** The object key of a parcel's data. */
  keyOf(sha256: string): string {
    assertDigest(sha256);
    return `${this.parcelsPrefix}${sha256}`;
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined;
  }

  async stat(sha256: string): Promise<ParcelStat | undefined> {
    this.assertOpen();
    const head = await this.head(this.keyOf(sha256));
    if (head !== undefined) return { size: head.size };
    await this.confirmBucket();
    return undefined;
  }

  /**
   * Lists the parcel keys from just before each unresolved digest (in digest order), so that
   * one ListObjectsV2 page answers every wanted digest it spans: one request for a store of up
   * to 1000 parcels, and never more requests than digests.
   */
  async missing(digests: readonly string[]): Promise<Set<string>> {
    return missingFrom(digests, await this.storedSizes(digests));
  }

  async storedSizes(digests: readonly string[]): Promise<Map<string, number>> {
    this.assertOpen();
    digests.forEach(assertDigest);
    const wanted = [...new Set(digests)].sort();
    const sizes = new Map<string, number>();
    let next = 0;
    while (next < wanted.length) {
      const firstKey = this.keyOf(wanted[next] ?? '');
      const page = await this.listPage(this.parcelsPrefix, { StartAfter: firstKey.slice(0, -1) });
      const present = new Map((page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [[o.Key, sizeOfListed(o)] as const])));
      const last = [...present.keys()].at(-1);
      if (page.IsTruncated === true && last === undefined) throw unavailable('ListObjectsV2', 'a truncated page with no keys');
      for (; next < wanted.length; next++) {
        const sha256 = wanted[next] ?? '';
        const key = this.keyOf(sha256);
        if (page.IsTruncated === true && last !== undefined && key > last) break;
        const size = present.get(key);
        if (size !== undefined) sizes.set(sha256, size);
      }
    }
    return sizes;
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    this.assertOpen();
    const key = this.keyOf(sha256);
    if (range !== undefined) assertRangeShape(sha256, range);
    let object: S3.GetObjectCommandOutput;
    try {
      const command = new this.sdk.GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }),
      });
      object = await this.send((o) => this.client.send(command, o));
    } catch (err) {
      if (isMissingObject(err)) throw new BindleError('not_found', `parcel ${sha256} not found`);
      if (s3Status(err) === 416 && range !== undefined) throw rangeNotSatisfiable(sha256, range);
      throw unavailable(`GET ${key}`, err);
    }
    const body = object.Body;
    if (!(body instanceof Readable)) throw new BindleError('internal', `S3 GET ${key} returned no stream`);
    if (range !== undefined && object.ContentRange === undefined) {
      // The service answered the whole object (some do for an empty one): only a range from
      // its first byte on is then the answer.
      const size = object.ContentLength ?? 0;
      if (range.start !== 0 || size === 0) {
        body.destroy();
        throw rangeNotSatisfiable(sha256, range, size);
      }
    }
    return body;
  }

  async put(sha256: string, expectedSize: number, data: Readable): Promise<PutResult> {
    this.assertOpen();
    assertDigest(sha256);
    assertExpectedSize(expectedSize);
    const putting = this.putVerified(sha256, expectedSize, data);
    this.puts.add(putting);
    try {
      return await putting;
    } finally {
      this.puts.delete(putting);
    }
  }

  async *list(): AsyncIterable<string> {
    for await (const entry of this.entries()) yield entry.sha256;
  }

  async *entries(): AsyncIterable<StoredParcel> {
    this.assertOpen();
    for await (const object of this.objects(this.parcelsPrefix)) {
      const name = object.Key?.slice(this.parcelsPrefix.length);
      if (name !== undefined && isSha256Hex(name)) {
        yield { sha256: name, size: object.Size ?? 0, storedAt: object.LastModified?.getTime() ?? 0 };
      }
    }
  }

  /**
   * Hides the parcel by copying it to `hidden/` (server-side CopyObject: up to 5 GiB) and
   * deleting it; restores it by putting the hidden copy back (verified, no clobber, as any put).
   */
  async remove(sha256: string, confirm: () => Promise<boolean>): Promise<RemoveOutcome> {
    this.assertOpen();
    const key = this.keyOf(sha256);
    const hidden = `${this.hiddenPrefix}${sha256}.${randomBytes(6).toString('hex')}`;
    const stat = await this.stat(sha256);
    if (stat === undefined) return 'absent';
    try {
      await this.client.send(
        new this.sdk.CopyObjectCommand({ Bucket: this.bucket, Key: hidden, CopySource: `${this.bucket}/${encodeURI(key)}` }),
      );
    } catch (err) {
      if (isMissingObject(err)) return 'absent';
      throw unavailable(`copying ${key} to ${hidden}`, err);
    }
    await this.deleteKey(key);
    return confirmRemoval(
      confirm,
      () => this.deleteKey(hidden),
      async () => {
        const object = await this.send((o) => this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: hidden }), o));
        if (!(object.Body instanceof Readable)) throw new BindleError('internal', `S3 GET ${hidden} returned no stream`);
        try {
          await this.put(sha256, stat.size, object.Body);
        } catch (err) {
          object.Body.destroy();
          if (!(err instanceof BindleError && err.code === 'already_exists')) throw err;
        }
        await this.deleteKey(hidden);
      },
    );
  }

  /**
   * Removes what killed uploads left, judged by age alone so that it is safe while other
   * replicas upload: multipart uploads under `parcels/` started longer than the staging age
   * ago are aborted, and claims and hidden data that old are deleted. A call while a sweep is
   * under way gets the next one (see Sweeper).
   */
  sweep(): Promise<void> {
    return this.sweeper.sweep();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.puts, this.sweeper.close()]);
    this.client.destroy();
  }

  /** Sends a request within the store's request deadline (REQUEST_DEADLINE_MS). */
  private send<T>(request: (options: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    return withinDeadline(this.deadlineMs, request);
  }

  private assertOpen(): void {
    if (this.closed) throw new BindleError('unavailable', this.closedMessage);
  }

  /** Every object under `prefix`, page by page. */
  private async *objects(prefix: string): AsyncIterable<S3._Object> {
    let token: string | undefined;
    do {
      const page = await this.listPage(prefix, token === undefined ? {} : { ContinuationToken: token });
      yield* page.Contents ?? [];
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async listPage(prefix: string, from: { StartAfter?: string; ContinuationToken?: string }): Promise<S3.ListObjectsV2CommandOutput> {
    try {
      return await this.send((o) =>
        this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: LIST_PAGE, ...from }), o),
      );
    } catch (err) {
      throw unavailable(`listing ${prefix}`, err);
    }
  }

  private async putVerified(sha256: string, expectedSize: number, data: Readable): Promise<PutResult> {
    if (expectedSize <= REFUSE_UNREAD_ABOVE_BYTES) {
      await this.putSmall(sha256, expectedSize, data, false);
    } else {
      if (await this.stored(sha256)) throw alreadyExists(sha256);
      if (expectedSize <= PART_BYTES) await this.putSmall(sha256, expectedSize, data, true);
      else await this.putMultipart(sha256, expectedSize, data);
    }
    return { sha256, size: expectedSize };
  }

  /**
   * One conditional PutObject of the received, verified data. Unless `lookedUp` (a HEAD found
   * the parcel absent before), data that fails its checks is refused as stored when it is.
   */
  private async putSmall(sha256: string, expectedSize: number, data: Readable, lookedUp: boolean): Promise<void> {
    // The received chunks gathered (in memory within the part spool's cap, copied into one buffer
    // of the parcel's size as they come once past a few; else in a spool file) until the data
    // checked out, then handed over as one buffer, the PutObject's body: one copy of the parcel is
    // held while it is received and sent, and counted by the spool until the service answered.
    const gathered = new GatheredPart(this.partSpool, expectedSize);
    const sink: UploadSink = {
      batchBytes: RECEIVE_BATCH_BYTES,
      maxQueued: 2,
      write: async (batch) => {
        for (const chunk of batch) await gathered.add(chunk);
      },
    };
    let whole: Buffer;
    try {
      assertDigestMatches(sha256, await receiveParcel(data, expectedSize, sink, this.uploadBudget));
      whole = await gathered.whole();
    } catch (err) {
      gathered.close();
      const wrongData = isBindleError(err, 'size_mismatch') || isBindleError(err, 'digest_mismatch');
      if (wrongData && !lookedUp && (await this.stored(sha256))) throw alreadyExists(sha256);
      throw err;
    }
    const key = this.keyOf(sha256);
    try {
      const command = new this.sdk.PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: whole,
        ContentLength: expectedSize,
        ContentType: 'application/octet-stream',
        IfNoneMatch: '*',
      });
      await this.send((o) => this.client.send(command, o));
    } catch (err) {
      const status = s3Status(err);
      // 412: the parcel exists; 409: a concurrent conditional write of it won.
      if (status === 412 || (status === 409 && (await this.stored(sha256)))) throw alreadyExists(sha256);
      throw unavailable(`PUT ${key}`, err);
    } finally {
      gathered.close();
    }
  }

  private async putMultipart(sha256: string, expectedSize: number, data: Readable): Promise<void> {
    const key = this.keyOf(sha256);
    const bucket = this.bucket;
    let uploadId: string | undefined;
    try {
      uploadId = (await this.send((o) =>
        this.client.send(new this.sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream' }), o),
      )).UploadId;
    } catch (err) {
      throw unavailable(`starting a multipart upload of ${key}`, err);
    }
    if (uploadId === undefined) throw unavailable(`starting a multipart upload of ${key}`, 'no UploadId');
    const UploadId = uploadId;
    const parts: S3.CompletedPart[] = [];
    const writer = new PartWriter(Math.max(PART_BYTES, Math.ceil(expectedSize / MAX_PARTS)), PARTS_IN_FLIGHT, async (PartNumber, Body) => {
      try {
        const part = await this.client.send(
          new this.sdk.UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber, Body, ContentLength: Body.length }),
        );
        parts.push({ PartNumber, ETag: part.ETag });
      } catch (err) {
        throw unavailable(`uploading part ${PartNumber} of ${key}`, err);
      }
    }, this.partSpool);
    const sink: UploadSink = {
      batchBytes: RECEIVE_BATCH_BYTES,
      maxQueued: 2,
      write: async (chunks) => {
        for (const chunk of chunks) await writer.add(chunk);
      },
    };
    let completed = false;
    try {
      try {
        assertDigestMatches(sha256, await receiveParcel(data, expectedSize, sink, this.uploadBudget));
        await writer.finish();
      } finally {
        // Never abort (below) while parts are still being sent.
        await writer.settled();
        writer.close();
      }
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.complete(sha256, async () => {
        try {
          await this.client.send(
            new this.sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
          );
          completed = true;
        } catch (err) {
          throw unavailable(`completing the multipart upload of ${key}`, err);
        }
      });
    } finally {
      if (!completed) {
        // Best effort: an upload left behind is invisible and removed by a later sweep.
        const abort = new this.sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId });
        await this.send((o) => this.client.send(abort, o)).catch(() => undefined);
      }
    }
  }

  /**
   * Runs `completeUpload` only while holding the parcel's claim and only if the parcel is still
   * absent; a put that finds the claim taken waits until the parcel appears (already_exists),
   * the claim is dropped (it tries again), or the claim is stale (it removes it and tries again).
   */
  private async complete(sha256: string, completeUpload: () => Promise<void>): Promise<void> {
    const claimKey = `${this.claimsPrefix}${sha256}`;
    const staleMs = Math.min(CLAIM_STALE_MS, this.maxAgeMs);
    for (;;) {
      if (await this.stored(sha256)) throw alreadyExists(sha256);
      if (await this.claim(claimKey)) break;
      for (;;) {
        await sleep(CLAIM_POLL_MS);
        if (await this.stored(sha256)) throw alreadyExists(sha256);
        const claimedAt = (await this.head(claimKey))?.modifiedMs;
        if (claimedAt === undefined) break;
        if (Date.now() - claimedAt >= staleMs) {
          await this.deleteKey(claimKey);
          break;
        }
      }
    }
    try {
      if (await this.stored(sha256)) throw alreadyExists(sha256);
      await completeUpload();
    } finally {
      await this.deleteKey(claimKey).catch(() => undefined);
    }
  }

  /** Creates `claimKey` if absent; false when it exists. */
  private async claim(claimKey: string): Promise<boolean> {
    try {
      const command = new this.sdk.PutObjectCommand({
        Bucket: this.bucket,
        Key: claimKey,
        Body: randomBytes(8).toString('hex'),
        IfNoneMatch: '*',
      });
      await this.send((o) => this.client.send(command, o));
      return true;
    } catch (err) {
      const status = s3Status(err);
      if (status === 412 || status === 409) return false;
      throw unavailable(`PUT ${claimKey}`, err);
    }
  }

  /** The object's size and last-modified time (ms), or undefined when it does not exist. */
  private async head(key: string): Promise<{ size: number; modifiedMs: number } | undefined> {
    try {
      const head = await this.send((o) => this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }), o));
      return { size: head.ContentLength ?? 0, modifiedMs: head.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if (s3Status(err) === 404) return undefined;
      throw unavailable(`HEAD ${key}`, err);
    }
  }

  /**
   * Makes sure the bucket still exists, after a HEAD's 404 that cannot say whether the object or
   * the bucket is missing: a bucket deleted under a running store (or, on a service without
   * persistence, lost in a restart) makes its parcels unavailable, never absent, so that readers
   * are not told that parcels are gone and readiness fails.
   */
  private async confirmBucket(): Promise<void> {
    try {
      await this.send((o) => this.client.send(new this.sdk.HeadBucketCommand({ Bucket: this.bucket }), o));
    } catch (err) {
      if (s3Status(err) === 404) throw new BindleError('unavailable', `S3 bucket ${this.bucket} does not exist (any more)`, { cause: err });
      throw unavailable(`HEAD of bucket ${this.bucket}`, err);
    }
  }

  /** has() for a put under way, which close() lets finish. */
  private async stored(sha256: string): Promise<boolean> {
    return (await this.head(this.keyOf(sha256))) !== undefined;
  }

  private async deleteKey(key: string): Promise<void> {
    try {
      await this.send((o) => this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }), o));
    } catch (err) {
      if (!isMissingObject(err)) throw unavailable(`DELETE ${key}`, err);
    }
  }

  private async sweepOnce(signal: AbortSignal): Promise<void> {
    const cutoff = Date.now() - this.maxAgeMs;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      signal.throwIfAborted();
      const command = new this.sdk.ListMultipartUploadsCommand({
        Bucket: this.bucket,
        Prefix: this.parcelsPrefix,
        ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
        ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
      });
      const page = await this.send((o) => this.client.send(command, o));
      for (const upload of page.Uploads ?? []) {
        signal.throwIfAborted();
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if ((upload.Initiated?.getTime() ?? 0) > cutoff) continue;
        try {
          const abort = new this.sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId });
          await this.send((o) => this.client.send(abort, o));
        } catch (err) {
          if (!isMissingObject(err)) throw err;
        }
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);

    for (const prefix of [this.claimsPrefix, this.hiddenPrefix]) {
      for await (const object of this.objects(prefix)) {
        signal.throwIfAborted();
        if (object.Key !== undefined && (object.LastModified?.getTime() ?? 0) <= cutoff) await this.deleteKey(object.Key);
      }
    }
  }
}
