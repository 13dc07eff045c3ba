/**
 * Benchmark 8b: the server's resting RSS over a long mixed workload. A fresh server gets a warm-up
 * of the mix, rests, and its RSS is read ("after warm-up"); then the same mix runs for the soak
 * (10 minutes; 20 s with --quick), the server rests again and its RSS is read ("after the
 * soak"). During the soak its RSS is also sampled every minute (5 s with --quick), under the mix,
 * and the trend goes in the notes (growth that levels off is a cache or a thread reaching its
 * size; a leak keeps climbing). But for --quick, its RSS is read once more 65 s after the soak
 * (IDLE_READ_MS), once the server has compacted its heap after the busy spell (in the notes). The mix, on
 * 8 keep-alive connections: GETs and HEADs of small parcels, GETs of a 4 MiB parcel with and
 * without a Range, invoice GETs (TOML and JSON, some conditional), `_q` queries, 404s, and new
 * bindles with small parcels uploaded throughout. Every reply's status is checked. Runnable
 * alone: `npm run bench -- --only soak`.
 *
 * The server's bounded caches grow with the index until they reach their caps: SQLite's page
 * cache (16 MiB) and the recently read invoices (4096 rows). The soak's uploads keep growing the
 * index, so without more a soak would measure those caches filling (by design, up to their caps)
 * beside any leak. Before the warm-up, FILL_BINDLES bindles (4096, more than the invoice cache
 * holds and an index larger than the page cache) are therefore created and each read once, so
 * that "after warm-up" is read with the caches full; the soak's mix and length are unchanged.
 */
import http from 'node:http';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { MiB, payload, sha256Hex } from '../lib/data.js';
import { downloadDiscard, httpRequest, uploadChunks } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { memoryOf, spawnServer, type BenchServer } from '../lib/server.js';
import { IDLE_COMPACTION_MS } from '../../server/heap-compaction.js';

const SOAK_MS = 10 * 60 * 1000;
const QUICK_SOAK_MS = 20 * 1000;
const WARM_UP_MS = 30 * 1000;
const QUICK_WARM_UP_MS = 5 * 1000;
/** How long the server rests before its RSS is read. */
const REST_MS = 5000;
/** How often the server's RSS is sampled during the soak, under the mix (its trend goes in the notes). */
const TREND_INTERVAL_MS = 60_000;
const QUICK_TREND_INTERVAL_MS = 5000;
const CONNECTIONS = 8;
const SMALL_PARCELS = 64;
const BIG_BYTES = 4 * MiB;
/** Bindles created and read before the warm-up, to fill the bounded caches (see the header); fewer with --quick. */
const FILL_BINDLES = 4096;
const QUICK_FILL_BINDLES = 512;

/** The most time filling the caches may take (it is bound by the index's fsyncs). */
const FILL_BUDGET_MS = 240_000;
const QUICK_FILL_BUDGET_MS = 60_000;

/** The soak case's time limit: all its phases, with slack. */
function soakBudgetMs(quick: boolean): number {
  return (quick ? QUICK_SOAK_MS + QUICK_WARM_UP_MS + QUICK_FILL_BUDGET_MS : SOAK_MS + WARM_UP_MS + FILL_BUDGET_MS + IDLE_READ_MS) + 2 * REST_MS + 60_000;
}

interface Corpus {
  name: string;
  smalls: string[];
  big: string;
}

async function seed(ctx: BenchContext, server: BenchServer): Promise<Corpus> {
  const name = 'bench.example.com/soak';
  const data = Array.from({ length: SMALL_PARCELS }, (_, i) => payload(256 + i * 61, 1000 + i));
  const big = payload(BIG_BYTES, 999);
  const all = [...data, big];
  const labels = all.map((d, i) => ({ sha256: sha256Hex(d), size: d.length, mediaType: i % 2 === 0 ? 'application/wasm' : 'text/plain', name: `p${i}` }));
  await createInvoice(server.api, signedInvoice(ctx.keys, name, '1.0.0', labels));
  for (const [i, d] of all.entries()) {
    const result = await uploadChunks(parcelUrl(server.api, name, '1.0.0', labels[i]?.sha256 ?? ''), d.length, [d]);
    if (result.status !== 200) throw new Error(`soak seed upload answered ${result.status}: ${result.body}`);
  }
  return { name, smalls: labels.slice(0, SMALL_PARCELS).map((l) => l.sha256), big: labels[SMALL_PARCELS]?.sha256 ?? '' };
}

/** Creates `count` one-parcel bindles (the shape the mix uploads) and reads each invoice once, on CONNECTIONS connections. */
async function fillCaches(ctx: BenchContext, server: BenchServer, count: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let n = next++; n < count; n = next++) {
      const data = payload(1024 + (n % 512), 90_000 + n);
      const name = `bench.example.com/soak-fill-${n % 50}`;
      await createInvoice(server.api, signedInvoice(ctx.keys, name, `0.0.${n}`, [{ sha256: sha256Hex(data), size: data.length, mediaType: 'application/octet-stream', name: 'f.bin' }]));
      const reply = await httpRequest(`${server.api}/_i/${name}/0.0.${n}`, { agent });
      if (reply.status !== 200) throw new Error(`soak fill: GET of ${name}/0.0.${n} answered ${reply.status}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, () => worker()));
  } finally {
    agent.destroy();
  }
}

/** Runs the mix until `until` (performance.now()); returns the number of requests made. */
async function mix(ctx: BenchContext, server: BenchServer, corpus: Corpus, until: number, uploads: { next: number }): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let requests = 0;
  const expect = async (status: number, url: string, opts: Parameters<typeof httpRequest>[1] = {}): Promise<void> => {
    const reply = await httpRequest(url, { ...opts, agent });
    requests++;
    if (reply.status !== status) throw new Error(`soak: ${opts.method ?? 'GET'} ${url} answered ${reply.status}, not ${status}`);
  };
  const worker = async (w: number): Promise<void> => {
    for (let k = w; performance.now() < until; k += CONNECTIONS) {
      const small = corpus.smalls[k % corpus.smalls.length] ?? '';
      const step = k % 20;
      if (step < 8) await expect(200, parcelUrl(server.api, corpus.name, '1.0.0', small));
      else if (step < 10) await expect(200, parcelUrl(server.api, corpus.name, '1.0.0', small), { method: 'HEAD' });
      else if (step === 10) {
        const result = await downloadDiscard(parcelUrl(server.api, corpus.name, '1.0.0', corpus.big), agent);
        requests++;
        if (result.status !== 200 || result.bytes !== BIG_BYTES) throw new Error(`soak: big download ${result.status}, ${result.bytes} bytes`);
      } else if (step === 11) await expect(206, parcelUrl(server.api, corpus.name, '1.0.0', corpus.big), { headers: { range: `bytes=${k % 1000}-${(k % 1000) + 65_535}` } });
      else if (step < 14) await expect(200, `${server.api}/_i/${corpus.name}/1.0.0`, { headers: { accept: k % 2 === 0 ? 'application/json' : 'application/toml' } });
      else if (step === 14) await expect(200, `${server.api}/_q?q=soak&limit=10`);
      else if (step === 15) await expect(404, `${server.api}/_i/${corpus.name}/9.9.${k}`);
      else if (step === 16) await expect(304, parcelUrl(server.api, corpus.name, '1.0.0', small), { headers: { 'if-none-match': `"${small}"` } });
      else if (step === 17) {
        const n = uploads.next++;
        const data = payload(1024 + (n % 512), 50_000 + n);
        const sha256 = sha256Hex(data);
        const name = `bench.example.com/soak-upload-${n % 50}`;
        await createInvoice(server.api, signedInvoice(ctx.keys, name, `1.0.${n}`, [{ sha256, size: data.length, mediaType: 'application/octet-stream', name: 'u.bin' }]));
        const result = await uploadChunks(parcelUrl(server.api, name, `1.0.${n}`, sha256), data.length, [data], agent);
        requests += 2;
        if (result.status !== 200) throw new Error(`soak upload answered ${result.status}: ${result.body}`);
      } else await expect(200, `${server.api}/_i/${corpus.name}/1.0.0`);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)));
  } finally {
    agent.destroy();
  }
  return requests;
}

/** Runs `work` while sampling `pid`'s RSS every `intervalMs`: its result and the samples (MiB), in order. */
async function sampledRss<T>(pid: number, intervalMs: number, work: () => Promise<T>): Promise<{ result: T; samples: number[] }> {
  const samples: number[] = [];
  const timer = setInterval(() => {
    const memory = memoryOf(pid);
    if (memory !== undefined) samples.push(memory.rss / MiB);
  }, intervalMs);
  try {
    return { result: await work(), samples };
  } finally {
    clearInterval(timer);
  }
}

/**
 * How long after the soak its RSS is read once more: two of the server's idle-compaction
 * intervals (it compacts one to two intervals after a busy spell) and a rest.
 */
const IDLE_READ_MS = 2 * IDLE_COMPACTION_MS + REST_MS;

/** The server's RSS (MiB) once it has rested `restMs` (REST_MS unless given). */
async function restingRss(pid: number, restMs = REST_MS): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, restMs));
  const memory = memoryOf(pid);
  if (memory === undefined) throw new Error('cannot read the server\'s /proc status');
  return memory.rss / MiB;
}

export const soakCase: BenchCase = {
  name: 'soak',
  title: 'resting RSS after warm-up vs after a 10-minute mixed soak',
  timeLimitMs: soakBudgetMs,
  async run(ctx: BenchContext): Promise<CaseResult> {
    const soakMs = ctx.quick ? QUICK_SOAK_MS : SOAK_MS;
    const warmUpMs = ctx.quick ? QUICK_WARM_UP_MS : WARM_UP_MS;
    const dir = ctx.dir('soak');
    writeKeyring(dir, ctx.keys);
    const server = await spawnServer(dir);
    try {
      const corpus = await seed(ctx, server);
      const fill = ctx.quick ? QUICK_FILL_BINDLES : FILL_BINDLES;
      ctx.log(`  filling the bounded caches: ${fill} bindles created and read`);
      await fillCaches(ctx, server, fill);
      const uploads = { next: 0 };
      ctx.log(`  warm-up: ${warmUpMs / 1000} s of the mix`);
      const warm = await mix(ctx, server, corpus, performance.now() + warmUpMs, uploads);
      const afterWarmUp = await restingRss(server.pid);
      ctx.log(`  resting RSS after warm-up (${warm} requests): ${afterWarmUp.toFixed(1)} MiB; soaking for ${soakMs / 1000} s`);
      const trendMs = ctx.quick ? QUICK_TREND_INTERVAL_MS : TREND_INTERVAL_MS;
      const { result: soaked, samples } = await sampledRss(server.pid, trendMs, () => mix(ctx, server, corpus, performance.now() + soakMs, uploads));
      const trend = `RSS under the mix every ${trendMs / 1000} s of the soak: ${samples.map((mib) => mib.toFixed(0)).join(', ')} MiB`;
      ctx.log(`  ${trend}`);
      const afterSoak = await restingRss(server.pid);
      const peak = memoryOf(server.pid)?.peak ?? Number.NaN;
      ctx.log(`  resting RSS after the soak (${soaked} requests): ${afterSoak.toFixed(1)} MiB (peak ${(peak / MiB).toFixed(0)} MiB)`);
      // Read IDLE_READ_MS after the soak, the after-soak reading's rest included.
      const idle = ctx.quick ? undefined : await restingRss(server.pid, IDLE_READ_MS - REST_MS);
      const idleNote =
        idle === undefined
          ? 'RSS once idle after the soak: not read with --quick'
          : `RSS ${(IDLE_READ_MS / 1000).toFixed(0)} s after the soak, once the server has compacted its heap after the busy spell (server/heap-compaction.ts): ${idle.toFixed(1)} MiB`;
      if (idle !== undefined) ctx.log(`  ${idleNote}`);
      return {
        figures: [
          makeFigure({
            id: 'soak',
            title: `8b. Resting RSS after a ${soakMs >= 60_000 ? `${soakMs / 60_000}-minute` : `${soakMs / 1000}-second`} mixed soak`,
            unit: 'MiB',
            runs: [afterSoak],
            baseline: { title: 'resting RSS after warm-up', runs: [afterWarmUp] },
            target: { on: 'ratio', op: '<=', bound: 1.15, text: 'within 15 % of after warm-up' },
            notes: [
              `${soaked} requests on ${CONNECTIONS} connections (warm-up: ${warm}); ${uploads.next} bindles uploaded in all; VmHWM ${(peak / MiB).toFixed(0)} MiB; RSS read after ${REST_MS / 1000} s of rest`,
              `before the warm-up ${fill} bindles were created and read, so that the server's bounded caches (SQLite page cache, recently read invoices) are full when "after warm-up" is read`,
              trend,
              idleNote,
            ],
          }),
        ],
      };
    } finally {
      await server.stop();
    }
  },
};
