/**
 * Benchmark 1: uploading a 100 MiB parcel (POST to `/_i/{name}/{version}@{sha256}`), beside the
 * two things a verified store cannot be faster than: hashing the same bytes with sha256 in
 * process, and writing them to a file on the same disk with fsync. Also beside a bare Node
 * http server that receives, hashes and fsyncs the same bytes (what Node itself reaches here),
 * and one that only receives and hashes them (the most an HTTP upload over loopback reaches on
 * this machine, with the client sharing its cores).
 */
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { CHUNK, payload, sha256Hex } from '../lib/data.js';
import { uploadChunks } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { spawnBareServer, spawnServer, type BenchServer } from '../lib/server.js';
import { mbPerSecond, median } from '../lib/stats.js';

function* slices(data: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += CHUNK) yield data.subarray(offset, offset + CHUNK);
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
    for (const slice of slices(data)) {
      for (let offset = 0; offset < slice.length; ) offset += (await handle.write(slice, offset)).bytesWritten;
    }
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

export const uploadCase: BenchCase = {
  name: 'upload',
  title: 'parcel upload vs in-process sha256 and an fsync\'d write',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, uploadBytes: size } = ctx.sizes;
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
    const bareRate = async (data: Buffer, origin = bare.origin): Promise<number> => {
      const result = await uploadChunks(origin, data.length, slices(data));
      if (result.status !== 200 || result.body !== sha256Hex(data)) throw new Error(`bare upload answered ${result.status}: ${result.body}`);
      return mbPerSecond(data.length, result.ms);
    };
    try {
      const warmUp = payload(Math.min(size, 8 * 2 ** 20), 1000);
      await uploadParcel(ctx, server, warmUp, '0.0.1');
      await bareRate(warmUp);
      await bareRate(warmUp, receiver.origin);
      for (let r = 0; r < runs; r++) {
        const data = payload(size, r + 1);
        sha.push(hashRate(data));
        fsync.push(await fsyncWriteRate(scratch, data, r));
        upload.push((await uploadParcel(ctx, server, data, `1.0.${r}`)).rate);
        bareUpload.push(await bareRate(data));
        receiveOnly.push(await bareRate(data, receiver.origin));
        ctx.log(
          `  run ${r + 1}: upload ${upload.at(-1)?.toFixed(0)} MB/s, sha256 ${sha.at(-1)?.toFixed(0)} MB/s, ` +
            `fsync'd write ${fsync.at(-1)?.toFixed(0)} MB/s, bare Node receive+sha256+fsync ${bareUpload.at(-1)?.toFixed(0)} MB/s, ` +
            `bare Node receive+sha256 ${receiveOnly.at(-1)?.toFixed(0)} MB/s`,
        );
      }
    } finally {
      await receiver.stop();
      await bare.stop();
      await server.stop();
    }
    const ceiling = median(sha) <= median(fsync) ? { title: `sha256 in process`, runs: sha } : { title: `fsync'd write`, runs: fsync };
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
          baseline: { title: 'bare Node http: receive + sha256 + fsync\'d write', runs: bareUpload },
        }),
        makeFigure({
          id: 'upload.vs-receive',
          title: `1d. Parcel upload, ${label}, beside an upload that touches no disk`,
          unit: 'MB/s',
          runs: upload,
          baseline: { title: 'bare Node http: receive + sha256 only', runs: receiveOnly },
        }),
      ],
    };
  },
};
