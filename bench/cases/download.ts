/**
 * Benchmark 2: downloading a 100 MiB parcel (GET `/_i/{name}/{version}@{sha256}`), beside the
 * strongest baselines serving the same stored file in the same interleaved rounds: a bare
 * node:http server streaming it in 1 MiB chunks, nginx (sendfile) and the distribution
 * registry (a blob) when installed. Every download's status and length are checked.
 */
import http from 'node:http';
import { join } from 'node:path';
import { PARCEL_DATA_FILE, PARCEL_DIRECTORY } from '../../server/storage/file-parcel-store.js';
import { interleave, servePeers } from '../lib/baselines.js';
import { parcelUrl, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payload } from '../lib/data.js';
import { downloadDiscard } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { cpuMsOf, spawnServer } from '../lib/server.js';
import { mbPerSecond, median } from '../lib/stats.js';
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
  title: 'parcel download vs bare Node streaming 1 MiB chunks, nginx and the registry',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, uploadBytes: size } = ctx.sizes;
    const dir = ctx.dir('download');
    writeKeyring(dir, ctx.keys);
    const server = await spawnServer(dir);
    const agent = new http.Agent({ keepAlive: true });
    let results: Map<string, number[]>;
    let names: string[];
    let notes: string[];
    const cpu = new Map<string, number[]>();
    try {
      const { sha256 } = await uploadParcel(ctx, server, payload(size, 77), '1.0.0');
      const url = parcelUrl(server.api, 'bench.example.com/upload', '1.0.0', sha256);
      const path = join(dir, PARCEL_DIRECTORY, sha256, PARCEL_DATA_FILE);
      const check = async (_name: string, target: string): Promise<void> => {
        await downloadRate(target, size, agent);
      };
      const served = await servePeers(ctx.workRoot, { path, sha256, size, contentType: 'application/octet-stream', bare: 'file' }, check);
      notes = served.notes;
      try {
        const contenders = [{ name: 'bindle-server', url, pid: server.pid }, ...served.peers].map((p) => ({
          name: p.name,
          measure: async () => {
            const before = cpuMsOf(p.pid) ?? Number.NaN;
            const rate = await downloadRate(p.url, size, agent);
            cpu.set(p.name, [...(cpu.get(p.name) ?? []), (cpuMsOf(p.pid) ?? Number.NaN) - before]);
            return rate;
          },
        }));
        names = served.peers.map((p) => p.name);
        results = await interleave(contenders, runs, ctx.log, 'MB/s');
      } finally {
        await Promise.all(served.peers.map((p) => p.stop()));
      }
    } finally {
      agent.destroy();
      await server.stop();
    }
    const [bare, ...others] = names;
    if (bare === undefined) throw new Error('no bare Node baseline');
    return {
      figures: [
        makeFigure({
          id: 'download',
          title: `2. Parcel download, ${size / 2 ** 20} MiB`,
          unit: 'MB/s',
          runs: results.get('bindle-server') ?? [],
          baseline: { title: bare, runs: results.get(bare) ?? [] },
          peers: others.map((name) => ({ title: name, runs: results.get(name) ?? [] })),
          target: { on: 'ratio', op: '>=', bound: 0.9, text: '≥ 0.9 × bare Node (1 MiB chunks)' },
          notes: [
            `server CPU time per download (median of the recorded rounds; robust on a busy machine, where MB/s is not): ${[...cpu]
              .map(([name, ms]) => `${name} ${median(ms.slice(1)).toFixed(0)} ms`)
              .join(', ')}`,
          ],
        }),
      ],
      notes,
    };
  },
};
