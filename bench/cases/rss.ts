/**
 * Benchmark 8: the server's idle RSS (a fresh server holding one invoice, beside a bare
 * node:http server's), and its peak resident set size while it receives a 1 GiB parcel. The
 * bytes are generated on the fly (1 MiB chunks, never all in memory, stored only by the
 * server); the server's VmRSS is sampled every 50 ms from /proc. Each run uses a fresh data
 * directory, deleted afterwards. Skipped when the disk has less than 4 GiB free.
 */
import { statfsSync } from 'node:fs';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import { removeTempDir } from '../lib/cleanup.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payloadChunks, payloadSha256 } from '../lib/data.js';
import { uploadChunks } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { memoryOf, spawnBareServer, spawnServer } from '../lib/server.js';
import { MiB } from '../lib/data.js';
import { mbPerSecond } from '../lib/stats.js';

const MIN_FREE = 4 * 2 ** 30;
const SAMPLE_MS = 50;
const SEED = 4242;

export const rssCase: BenchCase = {
  name: 'rss',
  title: 'peak server RSS during a 1 GiB parcel upload',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, rssUploadBytes: size } = ctx.sizes;
    const fs = statfsSync(ctx.workRoot);
    const free = fs.bavail * fs.bsize;
    if (free < MIN_FREE) {
      return { figures: [], skipped: `only ${(free / 2 ** 30).toFixed(1)} GiB free on the disk of ${ctx.workRoot}; this benchmark needs 4 GiB` };
    }
    const sha256 = payloadSha256(size, SEED);
    const name = 'bench.example.com/big';
    const peaks: number[] = [];
    const idle: number[] = [];
    const bareIdle: number[] = [];
    const rates: number[] = [];
    let highWater = 0;
    for (let r = 0; r < runs; r++) {
      const dir = ctx.dir('rss');
      writeKeyring(dir, ctx.keys);
      const server = await spawnServer(dir);
      try {
        await createInvoice(server.api, signedInvoice(ctx.keys, name, '1.0.0', [{ sha256, size, mediaType: 'application/octet-stream', name: 'big.bin' }]));
        const bare = await spawnBareServer({ kind: 'receive' });
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const before = memoryOf(server.pid);
        const bareBefore = memoryOf(bare.pid);
        await bare.stop();
        if (before === undefined || bareBefore === undefined) throw new Error('cannot read the servers\' /proc status');
        idle.push(before.rss / MiB);
        bareIdle.push(bareBefore.rss / MiB);
        let peak = before.rss;
        const sampler = setInterval(() => {
          const now = memoryOf(server.pid);
          if (now !== undefined) peak = Math.max(peak, now.rss);
        }, SAMPLE_MS);
        let result;
        try {
          result = await uploadChunks(parcelUrl(server.api, name, '1.0.0', sha256), size, payloadChunks(size, SEED));
        } finally {
          clearInterval(sampler);
        }
        if (result.status !== 200) throw new Error(`1 GiB upload answered ${result.status}: ${result.body}`);
        const after = memoryOf(server.pid);
        if (after !== undefined) {
          peak = Math.max(peak, after.rss);
          highWater = Math.max(highWater, after.peak);
        }
        peaks.push(peak / MiB);
        rates.push(mbPerSecond(size, result.ms));
        ctx.log(`  run ${r + 1}: peak RSS ${(peak / MiB).toFixed(0)} MiB (idle ${(before.rss / MiB).toFixed(0)} MiB, bare Node idle ${(bareBefore.rss / MiB).toFixed(0)} MiB), upload ${rates.at(-1)?.toFixed(0)} MB/s`);
      } finally {
        await server.stop();
        removeTempDir(dir);
      }
    }
    return {
      figures: [
        makeFigure({
          id: 'rss.idle',
          title: '8. Idle server RSS (fresh start, one invoice, 2 s after start)',
          unit: 'MiB',
          runs: idle,
          baseline: { title: 'bare Node http server, idle', runs: bareIdle },
          target: { on: 'value', op: '<=', bound: 55, text: '≤ 55 MiB' },
        }),
        makeFigure({
          id: 'rss',
          title: `8. Peak server RSS during a ${(size / 2 ** 30).toFixed(size >= 2 ** 30 ? 0 : 2)} GiB parcel upload`,
          unit: 'MiB',
          runs: peaks,
          baseline: { title: 'idle RSS before the upload', runs: idle },
          target: { on: 'value', op: '<=', bound: 120, text: '≤ 120 MiB' },
          notes: [
            `VmRSS sampled every ${SAMPLE_MS} ms; the kernel's high-water mark (VmHWM) over all runs was ${(highWater / MiB).toFixed(0)} MiB`,
            `upload rate of the big parcel: ${rates.map((x) => x.toFixed(0)).join(', ')} MB/s`,
          ],
        }),
      ],
    };
  },
};
