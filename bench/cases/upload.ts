/**
 * Benchmark 1: uploading a 100 MiB parcel (POST to `/_i/{name}/{version}@{sha256}`), beside the
 * two things a verified store cannot be faster than: hashing the same bytes with sha256 in
 * process, and writing them to a file on the same disk with fsync (figure 1, the target of the
 * benchmarks' first issue). Also beside a bare Node http server that receives, hashes and stores
 * the same bytes the way the server's file parcel store does (1 MiB writes, background
 * fdatasyncs, an fsync; bench/bin/bare-http-server.ts): figure 1c, issue 13's "≥ 1.0 × bare
 * Node"; and beside one that only receives and hashes them (1d: the most an HTTP upload over
 * loopback reaches on this machine, with the client sharing its cores). Each of these writes
 * into page cache just freed (warmPageCache). And many small parcels (1000 × 1 KiB at
 * concurrency 16) beside a bare Node server doing one fsync per blob, and beside one that keeps
 * the parcel store's guarantees (verified, durable before its no-clobber link, the link durable
 * before the answer: bench/bin/bare-upload-server.ts): the first is the issue's target, the
 * second tells the cost of that policy from the server's own. Every figure here pairs rounds
 * (Sizes.uploadRuns of them) in which each contender is measured once, in alternating order
 * (inRoundOrder), so that the disk's drift within a run favours none of them. With
 * BINDLE_BENCH_BACKENDS listing postgres+s3 (bench/lib/backend.ts), 1c and 1e-1g again on
 * PostgreSQL + S3, and beside the S3 service itself (1h, 1i: the same bytes PUT straight to it,
 * bench/lib/s3-direct.ts), the ceiling of every parcel the server stores there.
 */
import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payload, sha256Hex, slices } from '../lib/data.js';
import { inRoundOrder } from '../lib/baselines.js';
import { uploadChunks } from '../lib/http.js';
import { makeFigure, type Figure } from '../lib/results.js';
import { backendSlug, benchBackends, onBackend, withServerOn, type BackendName } from '../lib/backend.js';
import { s3PutMBps, s3PutRate, type S3Target } from '../lib/s3-direct.js';
import { spawnBareServer, spawnBareUploadServer, spawnServer, type BenchServer } from '../lib/server.js';
import { mbPerSecond, median } from '../lib/stats.js';

/** Writes all of `data` at the file's position in 1 MiB writes. */
async function writeSlices(handle: FileHandle, data: Buffer): Promise<void> {
  for (const slice of slices(data)) {
    for (let offset = 0; offset < slice.length; ) offset += (await handle.write(slice, offset)).bytesWritten;
  }
}

/** MB/s of sha256 over `data` in 1 MiB updates. */
function hashRate(data: Buffer): number {
  const started = performance.now();
  const hash = createHash('sha256');
  for (const slice of slices(data)) hash.update(slice);
  hash.digest();
  return mbPerSecond(data.length, performance.now() - started);
}

/** MB/s of writing `data` to a new file in 1 MiB writes, then fsync and close. */
async function fsyncWriteRate(dir: string, data: Buffer, n: number): Promise<number> {
  const path = join(dir, `fsync-${n}.dat`);
  const started = performance.now();
  const handle = await open(path, 'wx', 0o600);
  try {
    await writeSlices(handle, data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const rate = mbPerSecond(data.length, performance.now() - started);
  await rm(path);
  return rate;
}

/** Creates an invoice for `data` and uploads it; resolves with MB/s of the parcel POST. */
export async function uploadParcel(ctx: BenchContext, server: BenchServer, data: Buffer, version: string): Promise<{ rate: number; sha256: string }> {
  const sha256 = sha256Hex(data);
  const name = 'bench.example.com/upload';
  await createInvoice(server.api, signedInvoice(ctx.keys, name, version, [{ sha256, size: data.length, mediaType: 'application/octet-stream', name: 'payload.bin' }]));
  const result = await uploadChunks(parcelUrl(server.api, name, version, sha256), data.length, slices(data));
  if (result.status !== 200) throw new Error(`parcel upload answered ${result.status}: ${result.body}`);
  return { rate: mbPerSecond(data.length, result.ms), sha256 };
}

/**
 * Hands the kernel `data.length` bytes of page cache and takes them back, untimed: a file written
 * without fsync, then removed. Run before each measured write of `data`, so that every contender
 * writes into pages the kernel has just freed. On this machine a write into other pages is much
 * slower: 100 MiB written and fsynced in 1 MiB writes right after allocating and filling a fresh
 * 100 MiB buffer spent 180-220 ms in its writes, the same bytes written again right after the
 * first file's removal 20-30 ms (the fsync ~95 ms either way). So whichever contender ran right
 * after another had removed its file (the fsync'd write, the bare sink server) measured up to
 * 2.5x faster than one that did not.
 */
async function warmPageCache(dir: string, data: Buffer): Promise<void> {
  const path = join(dir, 'page-cache-warm.dat');
  const handle = await open(path, 'w', 0o600);
  try {
    await writeSlices(handle, data);
  } finally {
    await handle.close();
  }
  await rm(path);
}

/** MB/s of a bare Node server's upload of `data` (one POST in 1 MiB chunks), its reply checked. */
async function bareUploadRate(origin: string, data: Buffer): Promise<number> {
  const result = await uploadChunks(origin, data.length, slices(data));
  if (result.status !== 200 || result.body !== sha256Hex(data)) throw new Error(`bare upload answered ${result.status}: ${result.body}`);
  return mbPerSecond(data.length, result.ms);
}

/** The bare Node server a 100 MiB upload is measured beside (figure 1c). */
const BARE_STORE = 'bare Node http: receive + sha256 + 1 MiB writes, background fdatasync, fsync';

/** Small parcels per run and their size, and the uploads in flight at once. */
const SMALL = { count: 1000, bytes: 1024, concurrency: 16 } as const;

/** POSTs every body to its URL, `concurrency` at a time over kept-alive connections; resolves with bodies per second. */
export async function uploadMany(targets: ReadonlyArray<{ url: string; data: Buffer; expect: string | undefined }>, concurrency: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < targets.length; i = next++) {
      const target = targets[i];
      if (target === undefined) continue;
      const result = await uploadChunks(target.url, target.data.length, [target.data], agent);
      if (result.status !== 200 || (target.expect !== undefined && result.body !== target.expect)) {
        throw new Error(`small upload to ${target.url} answered ${result.status}: ${result.body.slice(0, 300)}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return targets.length / ((performance.now() - started) / 1000);
}

/** The small parcels of run `r`, distinct from every other run's. */
function smallParcels(r: number, count: number): Array<{ sha256: string; data: Buffer }> {
  return Array.from({ length: count }, (_, j) => {
    const data = payload(SMALL.bytes, 5_000_000 + r * 100_000 + j);
    return { sha256: sha256Hex(data), data };
  });
}

/** Blobs/s per run of the small uploads: the server's, and the two bare Node servers'. */
interface SmallRuns {
  ours: number[];
  /** One file and one fsync per blob (the issue's baseline). */
  bare: number[];
  /** The parcel store's guarantees, bare. */
  durable: number[];
  /** On S3: PutObject straight to the S3 service (its own rate, the backend's ceiling). */
  s3: number[];
}

/**
 * 1000 × 1 KiB uploads at concurrency 16 into the bare server, the durable bare server and the
 * server, interleaved (and, given `s3`, as PutObjects straight to that S3 service); blobs/s per run.
 */
async function smallUploadRuns(ctx: BenchContext, server: BenchServer, runs: number, s3?: S3Target): Promise<SmallRuns> {
  const count = ctx.quick ? 200 : SMALL.count;
  const bare = await spawnBareUploadServer(ctx.dir('bare-small'));
  const durable = await spawnBareUploadServer(ctx.dir('bare-small-durable'), 'durable').catch(async (err: unknown) => {
    await bare.stop();
    throw err;
  });
  const result: SmallRuns = { ours: [], bare: [], durable: [], s3: [] };
  const name = 'bench.example.com/small-uploads';
  try {
    for (let r = -1; r < runs; r++) {
      const parcels = smallParcels(r + 1, count);
      const version = `2.0.${r + 1}`;
      const labels = parcels.map((p, j) => ({ sha256: p.sha256, size: p.data.length, mediaType: 'application/octet-stream', name: `small-${j}.bin` }));
      await createInvoice(server.api, signedInvoice(ctx.keys, name, version, labels));
      const rates: Record<keyof SmallRuns, number> = { ours: 0, bare: 0, durable: 0, s3: 0 };
      const contenders: Array<{ key: keyof SmallRuns; measure: () => Promise<number> }> = [
        { key: 'bare', measure: () => uploadMany(parcels.map((p) => ({ url: `${bare.origin}/`, data: p.data, expect: p.sha256 })), SMALL.concurrency) },
        { key: 'durable', measure: () => uploadMany(parcels.map((p) => ({ url: `${durable.origin}/${p.sha256}`, data: p.data, expect: p.sha256 })), SMALL.concurrency) },
        { key: 'ours', measure: () => uploadMany(parcels.map((p) => ({ url: parcelUrl(server.api, name, version, p.sha256), data: p.data, expect: undefined })), SMALL.concurrency) },
      ];
      if (s3 !== undefined) contenders.push({ key: 's3', measure: () => s3PutRate(s3, smallParcels(1000 + r + 1, count).map((p) => p.data), SMALL.concurrency) });
      for (const c of inRoundOrder(contenders, Math.max(r, 0))) rates[c.key] = await c.measure();
      if (r < 0) continue; // warm-up
      result.ours.push(rates.ours);
      result.bare.push(rates.bare);
      result.durable.push(rates.durable);
      if (s3 !== undefined) result.s3.push(rates.s3);
      ctx.log(
        `  small uploads run ${r + 1}: ${rates.ours.toFixed(0)} parcels/s, bare Node one fsync per blob ${rates.bare.toFixed(0)} blobs/s, ` +
          `bare Node with the store's guarantees ${rates.durable.toFixed(0)} blobs/s${s3 === undefined ? '' : `, S3 PutObject straight to the service ${rates.s3.toFixed(0)} objects/s`}`,
      );
    }
  } finally {
    await durable.stop();
    await bare.stop();
  }
  return result;
}

/** Figures 1e (the target, against one fsync per blob), 1f (against the same guarantees) and 1g (what the guarantees cost bare Node). */
function smallFigures(ctx: BenchContext, small: SmallRuns, backend: BackendName = 'sqlite+file'): Figure[] {
  const title = `${ctx.quick ? 200 : SMALL.count} × ${SMALL.bytes / 1024} KiB parcel uploads at concurrency ${SMALL.concurrency}`;
  const plain = 'bare Node http: sha256 + one file, one fsync per blob';
  return [
    makeFigure({
      ...onBackend(backend, 'upload.small', `1e. ${title}`),
      unit: 'parcels/s',
      runs: small.ours,
      baseline: { title: plain, runs: small.bare },
      ...(backend === 'sqlite+file' ? { target: { on: 'ratio', op: '>=', bound: 0.7, text: '≥ 0.7 × bare Node (one fsync per blob)' } } : {}),
    }),
    makeFigure({
      ...onBackend(backend, 'upload.small-vs-durable', `1f. ${title}, beside bare Node with the same guarantees`),
      unit: 'parcels/s',
      runs: small.ours,
      baseline: { title: 'bare Node http: sha256, verified, O_DSYNC write, no-clobber link, directory fsynced', runs: small.durable },
    }),
    ...(small.s3.length === 0
      ? []
      : [
          makeFigure({
            ...onBackend(backend, 'upload.small-vs-s3', `1h. ${title}, beside the S3 service itself`),
            unit: 'parcels/s',
            runs: small.ours,
            baseline: { title: `PutObject of the same sizes straight to the S3 service (AWS SDK, concurrency ${SMALL.concurrency})`, runs: small.s3 },
          }),
        ]),
    makeFigure({
      ...onBackend(backend, 'upload.small-durability', `1g. ${title}: bare Node with the store's guarantees, beside bare Node with one fsync`),
      unit: 'blobs/s',
      runs: small.durable,
      baseline: { title: plain, runs: small.bare },
    }),
  ];
}

/**
 * Figures 1c and 1e on another backend (PostgreSQL + S3): a server on fresh storage there,
 * beside the same bare Node servers, rounds interleaved.
 */
async function backendFigures(ctx: BenchContext, backend: BackendName, label: string): Promise<Figure[]> {
  const { uploadRuns: runs, uploadBytes: size } = ctx.sizes;
  const dir = ctx.dir(`upload-${backendSlug(backend)}`);
  writeKeyring(dir, ctx.keys);
  const upload: number[] = [];
  const bareUpload: number[] = [];
  const s3Upload: number[] = [];
  let small: SmallRuns = { ours: [], bare: [], durable: [], s3: [] };
  await withServerOn(backend, dir, async (server, storage) => {
    const scratch = ctx.dir('fsync');
    const bare = await spawnBareServer({ kind: 'sink', dir: scratch });
    try {
      small = await smallUploadRuns(ctx, server, runs, storage.s3);
      for (let r = 0; r < runs; r++) {
        const data = payload(size, r + 1);
        const contenders: Array<() => Promise<void>> = [
          async () => void upload.push((await uploadParcel(ctx, server, data, `1.0.${r}`)).rate),
          async () => void bareUpload.push(await bareUploadRate(bare.origin, data)),
        ];
        const s3Target = storage.s3;
        if (s3Target !== undefined) contenders.push(async () => void s3Upload.push(await s3PutMBps(s3Target, data)));
        for (const measure of inRoundOrder(contenders, r)) {
          await warmPageCache(scratch, data);
          await measure();
        }
        const direct = storage.s3 === undefined ? '' : `, one PutObject straight to the S3 service ${s3Upload.at(-1)?.toFixed(0)} MB/s`;
        ctx.log(`  ${backend} run ${r + 1}: upload ${upload.at(-1)?.toFixed(0)} MB/s, bare Node receive+sha256+store ${bareUpload.at(-1)?.toFixed(0)} MB/s${direct}`);
      }
    } finally {
      await bare.stop();
    }
  });
  return [
    makeFigure({
      ...onBackend(backend, 'upload.vs-bare', `1c. Parcel upload, ${label}, beside bare Node`),
      unit: 'MB/s',
      runs: upload,
      baseline: { title: BARE_STORE, runs: bareUpload },
    }),
    ...(s3Upload.length === 0
      ? []
      : [
          makeFigure({
            ...onBackend(backend, 'upload.vs-s3', `1i. Parcel upload, ${label}, beside the S3 service itself`),
            unit: 'MB/s',
            runs: upload,
            baseline: { title: 'one PutObject of the same bytes straight to the S3 service (AWS SDK)', runs: s3Upload },
          }),
        ]),
    ...smallFigures(ctx, small, backend),
  ];
}

export const uploadCase: BenchCase = {
  name: 'upload',
  title: 'parcel upload vs in-process sha256 and an fsync\'d write',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { uploadRuns: runs, uploadBytes: size } = ctx.sizes;
    const label = `${size / 2 ** 20} MiB`;
    const dir = ctx.dir('upload');
    const scratch = ctx.dir('fsync');
    writeKeyring(dir, ctx.keys);
    const server = await spawnServer(dir);
    const bare = await spawnBareServer({ kind: 'sink', dir: scratch });
    const receiver = await spawnBareServer({ kind: 'receive' });
    const sha: number[] = [];
    const fsync: number[] = [];
    const upload: number[] = [];
    const bareUpload: number[] = [];
    const receiveOnly: number[] = [];
    let small: SmallRuns = { ours: [], bare: [], durable: [], s3: [] };
    try {
      small = await smallUploadRuns(ctx, server, runs);
      const warmUp = payload(Math.min(size, 8 * 2 ** 20), 1000);
      await uploadParcel(ctx, server, warmUp, '0.0.1');
      await bareUploadRate(bare.origin, warmUp);
      await bareUploadRate(receiver.origin, warmUp);
      for (let r = 0; r < runs; r++) {
        const data = payload(size, r + 1);
        sha.push(hashRate(data));
        const contenders: Array<() => Promise<void>> = [
          async () => void fsync.push(await fsyncWriteRate(scratch, data, r)),
          async () => void upload.push((await uploadParcel(ctx, server, data, `1.0.${r}`)).rate),
          async () => void bareUpload.push(await bareUploadRate(bare.origin, data)),
          async () => void receiveOnly.push(await bareUploadRate(receiver.origin, data)),
        ];
        for (const measure of inRoundOrder(contenders, r)) {
          await warmPageCache(scratch, data);
          await measure();
        }
        ctx.log(
          `  run ${r + 1}: upload ${upload.at(-1)?.toFixed(0)} MB/s, sha256 ${sha.at(-1)?.toFixed(0)} MB/s, ` +
            `fsync'd write ${fsync.at(-1)?.toFixed(0)} MB/s, bare Node receive+sha256+store ${bareUpload.at(-1)?.toFixed(0)} MB/s, ` +
            `bare Node receive+sha256 ${receiveOnly.at(-1)?.toFixed(0)} MB/s`,
        );
      }
    } finally {
      await receiver.stop();
      await bare.stop();
      await server.stop();
    }
    const ceiling = median(sha) <= median(fsync) ? { title: `sha256 in process`, runs: sha } : { title: `fsync'd write`, runs: fsync };
    const elsewhere: Figure[] = [];
    for (const backend of benchBackends().filter((b) => b !== 'sqlite+file')) elsewhere.push(...(await backendFigures(ctx, backend, label)));
    return {
      figures: [
        makeFigure({
          id: 'upload',
          title: `1. Parcel upload, ${label}`,
          unit: 'MB/s',
          runs: upload,
          baseline: { title: `min(sha256, fsync'd write) = ${ceiling.title}`, runs: ceiling.runs },
          target: { on: 'ratio', op: '>=', bound: 0.9, text: '≥ 0.9 × min(sha256, fsync write)' },
        }),
        makeFigure({ id: 'upload.sha256', title: `1a. sha256 in process, ${label}`, unit: 'MB/s', runs: sha }),
        makeFigure({ id: 'upload.fsync-write', title: `1b. fsync'd file write, ${label}`, unit: 'MB/s', runs: fsync }),
        makeFigure({
          id: 'upload.vs-bare',
          title: `1c. Parcel upload, ${label}, beside bare Node`,
          unit: 'MB/s',
          runs: upload,
          baseline: { title: BARE_STORE, runs: bareUpload },
          target: { on: 'ratio', op: '>=', bound: 1, text: '≥ 1.0 × bare Node' },
        }),
        makeFigure({
          id: 'upload.vs-receive',
          title: `1d. Parcel upload, ${label}, beside an upload that touches no disk`,
          unit: 'MB/s',
          runs: upload,
          baseline: { title: 'bare Node http: receive + sha256 only', runs: receiveOnly },
        }),
        ...smallFigures(ctx, small),
        ...elsewhere,
      ],
    };
  },
};
