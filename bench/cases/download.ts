/**
 * Benchmark 2: downloading a 100 MiB parcel (GET `/_i/{name}/{version}@{sha256}`), beside a
 * bare node:http server streaming the same stored file. Runs alternate between the two.
 */
import http from 'node:http';
import { join } from 'node:path';
import { PARCEL_DATA_FILE, PARCEL_DIRECTORY } from '../../server/storage/file-parcel-store.js';
import { parcelUrl, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payload } from '../lib/data.js';
import { downloadDiscard } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { spawnBareServer, spawnServer } from '../lib/server.js';
import { mbPerSecond } from '../lib/stats.js';
import { uploadParcel } from './upload.js';

async function downloadRate(url: string, size: number, agent: http.Agent): Promise<number> {
  const result = await downloadDiscard(url, agent);
  if (result.status !== 200 || result.bytes !== size) {
    throw new Error(`GET ${url}: status ${result.status}, ${result.bytes} of ${size} bytes`);
  }
  return mbPerSecond(size, result.ms);
}

export const downloadCase: BenchCase = {
  name: 'download',
  title: 'parcel download vs a bare Node http server streaming the same file',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, uploadBytes: size } = ctx.sizes;
    const dir = ctx.dir('download');
    writeKeyring(dir, ctx.keys);
    const server = await spawnServer(dir);
    const agent = new http.Agent({ keepAlive: true });
    const bindle: number[] = [];
    const bare: number[] = [];
    try {
      const { sha256 } = await uploadParcel(ctx, server, payload(size, 77), '1.0.0');
      const url = parcelUrl(server.api, 'bench.example.com/upload', '1.0.0', sha256);
      const bareServer = await spawnBareServer({ kind: 'file', path: join(dir, PARCEL_DIRECTORY, sha256, PARCEL_DATA_FILE) });
      try {
        await downloadRate(url, size, agent);
        await downloadRate(bareServer.origin, size, agent);
        for (let r = 0; r < runs; r++) {
          bindle.push(await downloadRate(url, size, agent));
          bare.push(await downloadRate(bareServer.origin, size, agent));
          ctx.log(`  run ${r + 1}: bindle-server ${bindle.at(-1)?.toFixed(0)} MB/s, bare Node ${bare.at(-1)?.toFixed(0)} MB/s`);
        }
      } finally {
        await bareServer.stop();
      }
    } finally {
      agent.destroy();
      await server.stop();
    }
    return {
      figures: [
        makeFigure({
          id: 'download',
          title: `2. Parcel download, ${size / 2 ** 20} MiB`,
          unit: 'MB/s',
          runs: bindle,
          baseline: { title: 'bare Node http streaming the file', runs: bare },
          target: { on: 'ratio', op: '>=', bound: 0.9, text: '≥ 0.9 × bare Node' },
        }),
      ],
    };
  },
};
