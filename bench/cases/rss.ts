/**
 * Benchmark 8: the server's idle RSS (a fresh server holding one invoice, beside a bare
 * node:http server's), its peak resident set size while it receives a 1 GiB parcel, and (8c)
 * while it receives parcels of a few MiB (a Wasm module's size), many at once. The
 * bytes are generated on the fly (1 MiB chunks, never all in memory, stored only by the
 * server); the server's VmRSS is sampled every 50 ms from /proc. Each run uses a fresh data
 * directory, deleted afterwards. Skipped when the disk has less than 4 GiB free. On every
 * backend of BINDLE_BENCH_BACKENDS (bench/lib/backend.ts): on postgres+s3 each run's server gets
 * a fresh database and bucket prefix, so the 1 GiB goes to the S3 server (on this disk too).
 * Where the environment sets NODE_EXTRA_CA_CERTS, the idle readings are taken again on the
 * default backend with both servers started without it (figure 8a, no target).
 */
import { statfsSync } from 'node:fs';
import { onBackend, onBackendDir, onEveryBackend, withServerOn, type BackendName } from '../lib/backend.js';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import { removeTempDir } from '../lib/cleanup.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payloadChunks, payloadSha256 } from '../lib/data.js';
import { uploadChunks } from '../lib/http.js';
import { makeFigure, type Figure } from '../lib/results.js';
import { environmentWithout, memoryOf, spawnBareServer, type BenchServer, type MemoryReading } from '../lib/server.js';
import { MiB } from '../lib/data.js';
import { mbPerSecond } from '../lib/stats.js';

const MIN_FREE = 4 * 2 ** 30;
const SAMPLE_MS = 50;
const SEED = 4242;

/** The invoice a run's server holds, for the big parcel it is sent. */
const BIG = { name: 'bench.example.com/big', version: '1.0.0', file: 'big.bin' } as const;

/** Figure 8c's invoice, and how many of its parcels are uploaded at once. */
const MODULES = { name: 'bench.example.com/modules', version: '1.0.0' } as const;
const MODULE_CONCURRENCY = 16;

/** The big parcel a run's server holds on its invoice: its sha256 is worked out once per case (1 GiB hashed). */
interface BigParcel {
  readonly sha256: string;
  readonly size: number;
}

/**
 * The idle readings of one run: `server` is given its invoice (for `big`) and a bare node:http
 * server is started with `env` as its environment; both are read 2 s later, and the bare one is
 * stopped.
 */
async function idleReading(ctx: BenchContext, server: BenchServer, big: BigParcel, env: NodeJS.ProcessEnv): Promise<{ before: MemoryReading; bareBefore: MemoryReading }> {
  await createInvoice(server.api, signedInvoice(ctx.keys, BIG.name, BIG.version, [{ sha256: big.sha256, size: big.size, mediaType: 'application/octet-stream', name: BIG.file }]));
  const bare = await spawnBareServer({ kind: 'receive' }, env);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const before = memoryOf(server.pid);
  const bareBefore = memoryOf(bare.pid);
  await bare.stop();
  if (before === undefined || bareBefore === undefined) throw new Error('cannot read the servers\' /proc status');
  return { before, bareBefore };
}

/**
 * The variable naming a CA file that Node reads into a certificate store as each process starts,
 * before any of its code runs: a machine that sets it (this one's environment does) gives every
 * Node process, the bare server too, that much more resident memory.
 */
const EXTRA_CA = 'NODE_EXTRA_CA_CERTS';

/**
 * Figure 8a, when this environment sets EXTRA_CA: the idle readings again, both servers started
 * without it, to show what of figure 8 is the machine's setting rather than the server's. Figure
 * 8 and its target stay on the environment as it is.
 */
async function idleWithoutExtraCa(ctx: BenchContext, backend: BackendName, big: BigParcel, setTo: string): Promise<Figure> {
  const env = environmentWithout(EXTRA_CA);
  const idle: number[] = [];
  const bareIdle: number[] = [];
  for (let r = 0; r < ctx.sizes.runs; r++) {
    const dir = ctx.dir(onBackendDir(backend, 'rss-without-extra-ca'));
    writeKeyring(dir, ctx.keys);
    await withServerOn(backend, dir, async (server) => {
      const { before, bareBefore } = await idleReading(ctx, server, big, env);
      idle.push(before.rss / MiB);
      bareIdle.push(bareBefore.rss / MiB);
      ctx.log(`  without ${EXTRA_CA}, run ${r + 1}: idle ${(before.rss / MiB).toFixed(1)} MiB, bare Node idle ${(bareBefore.rss / MiB).toFixed(1)} MiB`);
    }, undefined, { env }).finally(() => removeTempDir(dir));
  }
  return makeFigure({
    ...onBackend(backend, 'rss.idle-without-extra-ca', `8a. Idle server RSS as in 8, both servers started without ${EXTRA_CA}`),
    unit: 'MiB',
    runs: idle,
    baseline: { title: `bare Node http server, idle, without ${EXTRA_CA}`, runs: bareIdle },
    notes: [`${EXTRA_CA} is set in this environment (${setTo}): Node reads that file into a certificate store as each process starts, before any of its code runs; figure 8 is read with it set`],
  });
}

/** Figures 8 on one backend: a fresh server on fresh storage there for each run. */
async function rssOn(ctx: BenchContext, backend: BackendName): Promise<CaseResult> {
  const { runs, rssUploadBytes: size } = ctx.sizes;
  const big: BigParcel = { sha256: payloadSha256(size, SEED), size };
  const peaks: number[] = [];
  const idle: number[] = [];
  const bareIdle: number[] = [];
  const rates: number[] = [];
  let highWater = 0;
  for (let r = 0; r < runs; r++) {
    const dir = ctx.dir(onBackendDir(backend, 'rss'));
    writeKeyring(dir, ctx.keys);
    await withServerOn(backend, dir, async (server) => {
      const { before, bareBefore } = await idleReading(ctx, server, big, process.env);
      idle.push(before.rss / MiB);
      bareIdle.push(bareBefore.rss / MiB);
      let result: Awaited<ReturnType<typeof uploadChunks>> | undefined;
      const peak = await peakDuring(server.pid, before.rss, async () => {
        result = await uploadChunks(parcelUrl(server.api, BIG.name, BIG.version, big.sha256), size, payloadChunks(size, SEED));
      });
      if (result?.status !== 200) throw new Error(`1 GiB upload answered ${result?.status}: ${result?.body}`);
      highWater = Math.max(highWater, memoryOf(server.pid)?.peak ?? 0);
      peaks.push(peak / MiB);
      rates.push(mbPerSecond(size, result.ms));
      ctx.log(`  ${backend === 'sqlite+file' ? '' : `on ${backend}, `}run ${r + 1}: peak RSS ${(peak / MiB).toFixed(0)} MiB (idle ${(before.rss / MiB).toFixed(0)} MiB, bare Node idle ${(bareBefore.rss / MiB).toFixed(0)} MiB), upload ${rates.at(-1)?.toFixed(0)} MB/s`);
    }).finally(() => removeTempDir(dir));
  }
  const extraCa = process.env[EXTRA_CA];
  const withoutExtraCa = backend === 'sqlite+file' && extraCa !== undefined ? [await idleWithoutExtraCa(ctx, backend, big, extraCa)] : [];
  return {
    figures: [
      makeFigure({
        ...onBackend(backend, 'rss.idle', '8. Idle server RSS (fresh start, one invoice, 2 s after start)'),
        unit: 'MiB',
        runs: idle,
        baseline: { title: 'bare Node http server, idle', runs: bareIdle },
        // The targets are those of the default backend; other backends' figures are reported beside them.
        ...(backend === 'sqlite+file' ? { target: { on: 'value', op: '<=', bound: 55, text: '≤ 55 MiB' } as const } : {}),
      }),
      makeFigure({
        ...onBackend(backend, 'rss', `8. Peak server RSS during a ${(size / 2 ** 30).toFixed(size >= 2 ** 30 ? 0 : 2)} GiB parcel upload`),
        unit: 'MiB',
        runs: peaks,
        baseline: { title: 'idle RSS before the upload', runs: idle },
        ...(backend === 'sqlite+file' ? { target: { on: 'value', op: '<=', bound: 120, text: '≤ 120 MiB' } as const } : {}),
        notes: [
          `VmRSS sampled every ${SAMPLE_MS} ms; the kernel's high-water mark (VmHWM) over all runs was ${(highWater / MiB).toFixed(0)} MiB`,
          `upload rate of the big parcel: ${rates.map((x) => x.toFixed(0)).join(', ')} MB/s`,
        ],
      }),
      ...withoutExtraCa,
      await moduleUploadsOn(ctx, backend),
    ],
  };
}

/** The peak of `pid`'s VmRSS (sampled every SAMPLE_MS, and once more at the end) while `work` runs. */
async function peakDuring(pid: number, start: number, work: () => Promise<void>): Promise<number> {
  let peak = start;
  const sampler = setInterval(() => {
    const now = memoryOf(pid);
    if (now !== undefined) peak = Math.max(peak, now.rss);
  }, SAMPLE_MS);
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  return Math.max(peak, memoryOf(pid)?.rss ?? 0);
}

/**
 * Figure 8c on one backend: a fresh server on fresh storage for each run, given an invoice of
 * `moduleUploads` parcels of `moduleUploadBytes`, which are then uploaded MODULE_CONCURRENCY at
 * a time (the bytes generated on the fly); its peak RSS during the uploads, beside its idle RSS
 * before them.
 */
async function moduleUploadsOn(ctx: BenchContext, backend: BackendName): Promise<Figure> {
  const { runs, moduleUploads: count, moduleUploadBytes: size } = ctx.sizes;
  const seeds = Array.from({ length: count }, (_, i) => SEED + 1 + i);
  const digests = seeds.map((seed) => payloadSha256(size, seed));
  const peaks: number[] = [];
  const idle: number[] = [];
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    const dir = ctx.dir(onBackendDir(backend, 'rss-modules'));
    writeKeyring(dir, ctx.keys);
    await withServerOn(backend, dir, async (server) => {
      await createInvoice(server.api, signedInvoice(ctx.keys, MODULES.name, MODULES.version, digests.map((sha256, i) => ({ sha256, size, mediaType: 'application/wasm', name: `module-${i}.wasm` }))));
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const before = memoryOf(server.pid);
      if (before === undefined) throw new Error("cannot read the server's /proc status");
      const started = performance.now();
      const peak = await peakDuring(server.pid, before.rss, async () => {
        for (let first = 0; first < count; first += MODULE_CONCURRENCY) {
          const batch = seeds.slice(first, first + MODULE_CONCURRENCY);
          const results = await Promise.all(batch.map((seed, i) => uploadChunks(parcelUrl(server.api, MODULES.name, MODULES.version, digests[first + i] ?? ''), size, payloadChunks(size, seed))));
          const failed = results.find((result) => result.status !== 200);
          if (failed !== undefined) throw new Error(`a ${size}-byte parcel upload answered ${failed.status}: ${failed.body}`);
        }
      });
      idle.push(before.rss / MiB);
      peaks.push(peak / MiB);
      rates.push(mbPerSecond(count * size, performance.now() - started));
      ctx.log(`  ${backend === 'sqlite+file' ? '' : `on ${backend}, `}run ${r + 1}: peak RSS ${(peak / MiB).toFixed(0)} MiB during ${count} uploads of ${size / MiB} MiB, ${MODULE_CONCURRENCY} at a time (idle ${(before.rss / MiB).toFixed(0)} MiB), ${rates.at(-1)?.toFixed(0)} MB/s`);
    }).finally(() => removeTempDir(dir));
  }
  return makeFigure({
    ...onBackend(backend, 'rss.modules', `8c. Peak server RSS during ${count} uploads of ${size / MiB} MiB parcels, ${MODULE_CONCURRENCY} at a time`),
    unit: 'MiB',
    runs: peaks,
    baseline: { title: 'idle RSS before the uploads', runs: idle },
    notes: [`VmRSS sampled every ${SAMPLE_MS} ms; upload rates: ${rates.map((x) => x.toFixed(0)).join(', ')} MB/s`],
  });
}

export const rssCase: BenchCase = {
  name: 'rss',
  title: 'peak server RSS during a 1 GiB parcel upload',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const fs = statfsSync(ctx.workRoot);
    const free = fs.bavail * fs.bsize;
    if (free < MIN_FREE) {
      return { figures: [], skipped: `only ${(free / 2 ** 30).toFixed(1)} GiB free on the disk of ${ctx.workRoot}; this benchmark needs 4 GiB` };
    }
    return onEveryBackend((backend) => rssOn(ctx, backend));
  },
};
