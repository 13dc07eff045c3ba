/**
 * S3ParcelStore against a real S3 service (Ceph RGW from scripts/services/s3.sh): the
 * ParcelStore contract, plus what only the S3 store promises: its key layout, the requests a put
 * costs (through a recording proxy), no multipart
 * upload left after a failed put, parts spooled to disk past the memory cap, removal by age of what killed uploads left (multipart
 * uploads, claims, also after a real SIGKILL), a put that finds a killed process's claim
 * still succeeding, and errors that name a lost bucket (the contract's lost-storage case runs
 * on a bucket of its own, deleted and made again).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';

import {
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';

import { isBindleError } from '../../core/errors/bindle-error.js';
import { REFUSE_UNREAD_ABOVE_BYTES, type StagingOptions } from '../../server/storage/parcel-store.js';
import type { ReceiveOptions } from '../../server/storage/parcel-upload.js';
import { PartSpool, processPartSpool } from '../../server/storage/part-spool.js';
import { S3ParcelStore } from '../../server/storage/s3-parcel-store.js';
import { bundleAsServer } from '../helpers/bundle-as-server.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { emptyS3Prefix, s3TestBucket, s3TestClient, s3TestService } from '../helpers/s3-service.js';
import { abortingStream, listAll, parcelStoreContract, readAll, sha256Of, streamOf } from './parcel-store-contract.js';

/**
 * A plain HTTP proxy in front of the S3 service recording each request's method; every request
 * and reply passes through unchanged (the signed Host header is the proxy's, as the client sent it).
 */
async function recordingProxy(t: Test, target: string): Promise<{ url: string; requests: string[] }> {
  const upstream = new URL(target);
  const requests: string[] = [];
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    requests.push(req.method ?? '?');
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    forward.on('error', (err) => res.destroy(err));
    req.pipe(forward);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
    agent.destroy();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests };
}

const service = s3TestService(t);
if (service !== undefined) {
  const client = await s3TestClient(t, service);
  const bucket = await s3TestBucket(t, client);
  const open = (prefix: string, extra: StagingOptions & ReceiveOptions & { partSpool?: PartSpool } = {}): Promise<S3ParcelStore> =>
    S3ParcelStore.open({ bucket, prefix, endpoint: service.endpoint, region: service.region, forcePathStyle: true, ...extra });
  /** A prefix no other store in this run uses. */
  const freshPrefix = (): string => `run-${randomBytes(6).toString('hex')}/store`;
  const uploadsUnder = async (s3: S3Client, prefix: string): Promise<string[]> => {
    const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return (listed.Uploads ?? []).flatMap((u) => (u.UploadId === undefined ? [] : [u.UploadId]));
  };

  /** A store on a bucket of its own (removed at teardown), and what deletes that bucket (emptied first, as S3 requires) and makes it again. */
  const onOwnBucket = async (t: Test, _dir?: string, staging: StagingOptions = { stagingSweepMs: 0 }): Promise<{ store: S3ParcelStore; lose: () => Promise<void>; restore: () => Promise<void> }> => {
    const sdk = await import('@aws-sdk/client-s3');
    const own = await s3TestBucket(t, client);
    const store = await S3ParcelStore.open({ bucket: own, prefix: 'p', endpoint: service.endpoint, region: service.region, forcePathStyle: true, ...staging });
    const lose = async (): Promise<void> => {
      await emptyS3Prefix(client, own, '');
      await client.send(new sdk.DeleteBucketCommand({ Bucket: own }));
    };
    const restore = async (): Promise<void> => {
      await client.send(new sdk.CreateBucketCommand({ Bucket: own }));
    };
    return { store, lose, restore };
  };

  await parcelStoreContract(t, 'S3ParcelStore', (_dir, receive) => open(freshPrefix(), receive), onOwnBucket);

  t.test("a lost bucket is named in the store's errors, with the service's code and status", async (t) => {
    const { store, lose, restore } = await onOwnBucket(t);
    t.teardown(() => store.close());
    const own = store.bucket;
    const stored = randomBytes(100);
    await store.put(sha256Of(stored), stored.length, streamOf(stored));
    await lose();
    await t.rejects(store.stat(sha256Of(stored)), { message: `S3 bucket ${own} does not exist (any more)` }, "a HEAD's 404 is checked against the bucket");
    await t.rejects(store.openRead(sha256Of(stored)), { message: /^S3 GET p\/parcels\/[0-9a-f]{64} failed: NoSuchBucket \(HTTP 404\)/ }, 'a GET names the code');
    await t.rejects(store.missing([sha256Of(stored)]), { message: /failed: NoSuchBucket \(HTTP 404\)/ }, 'so does a listing');
    await restore();
  });

  t.test('parcels are the objects <prefix>/parcels/<sha256>', async (t) => {
    const prefix = freshPrefix();
    const store = await open(`/${prefix}/`);
    t.teardown(() => store.close());
    const data = Buffer.from('layout check');
    const sha = sha256Of(data);
    await store.put(sha, data.length, streamOf(data));
    t.equal(store.keyOf(sha), `${prefix}/parcels/${sha}`, 'slashes around the prefix are normalised');
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/parcels/${sha}` }));
    t.equal(head.ContentLength, data.length);
    const other = await open(prefix);
    t.teardown(() => other.close());
    t.same(await listAll(other), [sha], 'another store on the same bucket and prefix (a replica) sees it');
    const elsewhere = await open(freshPrefix());
    t.teardown(() => elsewhere.close());
    t.same(await listAll(elsewhere), [], 'a store on another prefix does not');
  });

  t.test('a parcel of many parts, whose part buffers are reused, reads back byte for byte', async (t) => {
    const store = await open(freshPrefix());
    t.teardown(() => store.close());
    const data = randomBytes(50 * (1 << 20) + 12345);
    const sha = sha256Of(data);
    t.same(await store.put(sha, data.length, streamOf(data, 48 * 1024)), { sha256: sha, size: data.length });
    t.ok((await readAll(await store.openRead(sha))).equals(data), 'its seven parts are intact');
  });

  t.test('an interrupted multipart upload is aborted: nothing stored, no upload left', async (t) => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    t.teardown(() => store.close());
    const data = randomBytes(18 * (1 << 20));
    const sha = sha256Of(data);
    await t.rejects(store.put(sha, data.length, abortingStream(data.subarray(0, 12 * (1 << 20)), new Error('client gone'))), {
      message: 'client gone',
    });
    const bad = Buffer.from(data);
    bad[0] = (bad[0] ?? 0) ^ 1;
    await t.rejects(store.put(sha, data.length, streamOf(bad)), { code: 'digest_mismatch' });
    t.same(await uploadsUnder(client, prefix), [], 'no multipart upload is left in progress');
    t.same(await store.missing([sha]), new Set([sha]));
    await store.put(sha, data.length, streamOf(data));
    t.ok((await readAll(await store.openRead(sha))).equals(data), 'the retry stores it');
  });

  t.test('stores opened without a part spool of their own share the process\'s (one cap per process)', async (t) => {
    const store = await open(freshPrefix());
    t.teardown(() => store.close());
    const before = processPartSpool.held;
    const data = randomBytes(12 << 20);
    const stream = new PassThrough();
    const putting = store.put(sha256Of(data), data.length, stream);
    stream.write(data.subarray(0, 2 << 20));
    for (let waited = 0; processPartSpool.held === before && waited < 30_000; waited += 10) await sleep(10);
    t.ok(processPartSpool.held > before, 'its upload\'s part reserves under processPartSpool\'s cap');
    stream.end(data.subarray(2 << 20));
    await putting;
    t.equal(processPartSpool.held, before, 'and gives it back');
    t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data));
  });

  t.test('uploads past the part spool\'s memory cap spool their parts to disk and store them intact', async (t) => {
    const dir = t.testdir();
    // Memory for one 8 MiB part: of two uploads at once, one part at a time is spooled.
    const spool = new PartSpool(dir, 8 << 20);
    const store = await open(freshPrefix(), { partSpool: spool });
    t.teardown(() => store.close());
    const parcels = [randomBytes(20 * (1 << 20) + 12_345), randomBytes(17 * (1 << 20) + 1)] as const;
    // The first upload sends 3 MiB and waits, its part holding the memory (from 1 MiB on a part reserves its size); the second is sent whole meanwhile.
    const first = new PassThrough();
    const putting = store.put(sha256Of(parcels[0]), parcels[0].length, first);
    first.write(parcels[0].subarray(0, 3 << 20));
    for (let waited = 0; spool.held < 8 << 20 && waited < 30_000; waited += 10) await sleep(10);
    t.equal(spool.held, 8 << 20, 'the first upload\'s part reserves its 8 MiB');
    await store.put(sha256Of(parcels[1]), parcels[1].length, streamOf(parcels[1], 100_000));
    t.equal(spool.spooled, 3, 'the second upload\'s three parts were spooled');
    t.equal(spool.held, 8 << 20, 'and it gave back all it reserved');
    first.end(parcels[0].subarray(3 << 20));
    await putting;
    t.equal(spool.held, 0, 'every reservation given back');
    t.equal(spool.files, 0, 'every spool file closed');
    t.same(await readdir(dir), [], 'nothing left in the spool directory');
    for (const data of parcels) t.ok((await readAll(await store.openRead(sha256Of(data)))).equals(data), `${data.length} bytes read back intact`);

    const none = new PartSpool(dir, 0);
    const spoolingOnly = await open(freshPrefix(), { partSpool: none });
    t.teardown(() => spoolingOnly.close());
    const data = randomBytes(9 * (1 << 20));
    await t.rejects(spoolingOnly.put(sha256Of(data), data.length, abortingStream(data.subarray(0, 6 << 20), new Error('client gone'))), { message: 'client gone' });
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(none.files, 0, 'an upload that fails part-way closes its spool file');
    await spoolingOnly.put(sha256Of(data), data.length, streamOf(data));
    t.equal(none.spooled, 3, 'with no memory allowed, every part is spooled: the failed upload\'s one, this one\'s two');
    t.ok((await readAll(await spoolingOnly.openRead(sha256Of(data)))).equals(data), 'and read back intact');
    const small = randomBytes(3 << 20);
    await spoolingOnly.put(sha256Of(small), small.length, streamOf(small, 100_000));
    t.equal(none.spooled, 4, 'a parcel stored with one PutObject is gathered in a spool file too');
    t.ok((await readAll(await spoolingOnly.openRead(sha256Of(small)))).equals(small), 'and read back intact');
    const bad = Buffer.from(small);
    bad[7] = (bad[7] ?? 0) ^ 1;
    await t.rejects(spoolingOnly.put(sha256Of(randomBytes(8)), bad.length, streamOf(bad)), { code: 'digest_mismatch' });
    t.same([none.files, none.held], [0, 0], 'a spooled parcel whose data is wrong leaves no file open, nothing reserved');
  });

  t.test('open aborts multipart uploads older than the staging age, never younger ones', async (t) => {
    const prefix = freshPrefix();
    const sha = sha256Of(Buffer.from('an upload whose replica was killed'));
    await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}/parcels/${sha}` }));
    const keeping = await open(prefix);
    t.teardown(() => keeping.close());
    t.equal((await uploadsUnder(client, prefix)).length, 1, 'an upload started within the staging age (maybe live) stays');
    await sleep(1100);
    const sweeping = await open(prefix, { stagingMaxAgeMs: 1000, stagingSweepMs: 0 });
    t.teardown(() => sweeping.close());
    t.same(await uploadsUnder(client, prefix), [], 'an upload older than the staging age is aborted');
  });

  t.test('close stops a sweep under way and the sweep queued behind it', async (t) => {
    const prefix = freshPrefix();
    const store = await open(prefix, { stagingMaxAgeMs: 1000, stagingSweepMs: 0 });
    t.teardown(() => store.close());
    // Claims killed replicas left: one DELETE each for the sweep.
    const claims = Array.from({ length: 60 }, (_, i) => `${prefix}/claims/${sha256Of(Buffer.from(`killed ${i}`))}`);
    await Promise.all(claims.map((Key) => client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'killed' }))));
    await sleep(1100);
    const running = store.sweep();
    const queued = store.sweep();
    await store.close();
    await t.rejects(running, { code: 'unavailable' }, 'the sweep under way stops as unavailable');
    await t.rejects(queued, { code: 'unavailable' }, 'the queued one never runs');
    const left = (await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/claims/` }))).KeyCount ?? 0;
    t.ok(left > claims.length / 2, `the sweep stopped early (${left} of ${claims.length} old claims left)`);
  });

  t.test("a put finding a killed process's claim completes once the claim is stale", async (t) => {
    const prefix = freshPrefix();
    const data = randomBytes(9 * (1 << 20));
    const sha = sha256Of(data);
    const store = await open(prefix, { stagingMaxAgeMs: 500, stagingSweepMs: 0 });
    t.teardown(() => store.close());
    // What a replica killed between taking its claim and completing its upload leaves behind.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/claims/${sha}`, Body: 'killed' }));
    t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length });
    t.ok((await readAll(await store.openRead(sha))).equals(data));
    await t.rejects(client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/claims/${sha}` })), {
      name: 'NotFound',
    }, 'the claim is gone');
  });

  t.test('an upload whose process is killed with SIGKILL: the retry succeeds, the orphan is swept by age', async (t) => {
    const prefix = freshPrefix();
    const data = randomBytes(12 * (1 << 20));
    const sha = sha256Of(data);
    const dir = t.testdir({
      'uploader.mts': `
        import { PassThrough } from 'node:stream';
        import { S3ParcelStore } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'server/storage/s3-parcel-store.ts')).href)};
        const [bucket, prefix, endpoint, region, sha] = process.argv.slice(2);
        const store = await S3ParcelStore.open({ bucket, prefix, endpoint, region, forcePathStyle: true, stagingSweepMs: 0 });
        const upload = new PassThrough();
        store.put(sha, ${data.length}, upload).catch(() => undefined);
        upload.write(Buffer.alloc(9 << 20, 1));
        setInterval(() => undefined, 1000);
      `,
    });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(dir, 'uploader.mts'), bucket, prefix, service.endpoint, service.region, sha],
      { stdio: 'ignore' },
    );
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    for (let tries = 0; (await uploadsUnder(client, prefix)).length === 0; tries++) {
      if (child.exitCode !== null) throw new Error(`the uploader exited with ${child.exitCode}`);
      if (tries > 600) throw new Error('the uploader never started its multipart upload');
      await sleep(100);
    }
    child.kill('SIGKILL');
    await once(child, 'exit');

    const store = await open(prefix);
    t.teardown(() => store.close());
    t.same(await store.missing([sha]), new Set([sha]), 'nothing of the killed upload is visible');
    t.same(await store.put(sha, data.length, streamOf(data)), { sha256: sha, size: data.length }, 'the retry succeeds');
    t.ok((await readAll(await store.openRead(sha))).equals(data));
    t.equal((await uploadsUnder(client, prefix)).length, 1, "the killed process's upload stays while it could be live");
    await sleep(1100);
    const sweeping = await open(prefix, { stagingMaxAgeMs: 1000, stagingSweepMs: 0 });
    t.teardown(() => sweeping.close());
    t.same(await uploadsUnder(client, prefix), [], 'once older than the staging age, it is aborted');
    t.ok((await readAll(await sweeping.openRead(sha))).equals(data), 'the parcel is untouched');
  });

  t.test('bundled by esbuild as the server is (scripts/bundle-server.mjs), the store loads the SDK and works', async (t) => {
    const dir = t.testdir({
      'entry.ts': `
        import { Readable } from 'node:stream';
        const { S3ParcelStore } = await import(${JSON.stringify(join(REPO_ROOT, 'server/storage/s3-parcel-store.ts'))});
        const [bucket, prefix, endpoint, region] = process.argv.slice(2);
        const store = await S3ParcelStore.open({ bucket, prefix, endpoint, region, forcePathStyle: true });
        const data = Buffer.from('bundled');
        const sha = '${sha256Of(Buffer.from('bundled'))}';
        await store.put(sha, data.length, Readable.from([data]));
        process.stdout.write(JSON.stringify([...(await store.missing([sha]))]));
        await store.close();
      `,
    });
    t.same(await bundleAsServer(join(dir, 'entry.ts'), join(dir, 'out')), [0, null], 'scripts/bundle-server.mjs bundled it');
    const child = spawn(process.execPath, [join(dir, 'out', 'entry.mjs'), bucket, freshPrefix(), service.endpoint, service.region], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    t.equal(code, 0, `the bundled store ran: ${err}`);
    t.equal(out, '[]', 'and stored the parcel (none missing)');
  });

  t.test('a new parcel up to REFUSE_UNREAD_ABOVE_BYTES costs one request to S3, a bigger one a HEAD first', async (t) => {
    const proxy = await recordingProxy(t, service.endpoint);
    const store = await S3ParcelStore.open({ bucket, prefix: freshPrefix(), endpoint: proxy.url, region: service.region, forcePathStyle: true, stagingSweepMs: 0 });
    t.teardown(() => store.close());
    /** The methods of the requests `action` sent to S3. */
    const requestsOf = async (action: () => Promise<unknown>): Promise<string[]> => {
      proxy.requests.length = 0;
      await action().catch((err: unknown) => {
        if (!isBindleError(err, 'already_exists')) throw err;
      });
      return [...proxy.requests];
    };
    const small = randomBytes(REFUSE_UNREAD_ABOVE_BYTES);
    const sha = sha256Of(small);
    t.same(await requestsOf(() => store.put(sha, small.length, streamOf(small))), ['PUT'], 'a new small parcel: one conditional PUT');
    t.same(await requestsOf(() => store.put(sha, small.length, streamOf(small))), ['PUT'], 'a stored one: the same PUT answers 412');
    t.same(await requestsOf(() => store.put(sha, 3, streamOf(Buffer.from('bad')))), ['HEAD'], 'wrong data: a HEAD tells it is stored');
    const big = randomBytes(REFUSE_UNREAD_ABOVE_BYTES + 1);
    const bigSha = sha256Of(big);
    t.same(await requestsOf(() => store.put(bigSha, big.length, streamOf(big))), ['HEAD', 'PUT'], 'a new bigger parcel: HEAD, then PUT');
    t.same(await requestsOf(() => store.put(bigSha, big.length, streamOf(big))), ['HEAD'], 'a stored one: refused after the HEAD');
    t.same(await store.missing([sha, bigSha]), new Set(), 'both are stored');
  });

  t.test("streams a slow client leaves unread do not hold up the store's other requests", async (t) => {
    // Connections idle out only after ten minutes here: a request that waits for one of them fails by the test's timeout.
    const store = await S3ParcelStore.open({ bucket, prefix: freshPrefix(), endpoint: service.endpoint, region: service.region, forcePathStyle: true, timeouts: { connectMs: 5_000, idleMs: 600_000 } });
    t.teardown(() => store.close());
    const data = randomBytes(4 << 20);
    const sha = sha256Of(data);
    await store.put(sha, data.length, streamOf(data));
    // More than the SDK's default pool of 50 connections, each kept busy by a read nobody reads.
    const unread = await Promise.all(Array.from({ length: 60 }, () => store.openRead(sha)));
    t.teardown(() => {
      for (const stream of unread) stream.destroy();
    });
    t.equal(unread.length, 60, 'sixty reads are open, none of them read');
    const small = Buffer.from('stored while sixty reads stall');
    t.same(await store.put(sha256Of(small), small.length, streamOf(small)), { sha256: sha256Of(small), size: small.length }, 'a put completes meanwhile');
    t.ok((await readAll(await store.openRead(sha256Of(small)))).equals(small), 'and so does another read');
    const first = unread[0];
    if (first !== undefined) t.ok((await readAll(first)).equals(data), 'a stalled read, read at last, is intact');
  });

  t.test('a bucket that does not exist is invalid_config', async (t) => {
    await t.rejects(
      S3ParcelStore.open({ bucket: `missing-${randomBytes(6).toString('hex')}`, prefix: '', endpoint: service.endpoint, region: service.region, forcePathStyle: true }),
      { code: 'invalid_config' },
    );
    await t.rejects(open('x', { stagingMaxAgeMs: -5 }), { code: 'invalid_config' });
  });
}
