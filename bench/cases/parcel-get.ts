/**
 * Benchmark 2b: requests per second of GET and HEAD of a 1 KiB parcel
 * (`/_i/{name}/{version}@{sha256}`) under 32 connections, beside the strongest baselines
 * serving the same bytes in the same interleaved rounds: a bare node:http server answering
 * from memory, nginx (sendfile) and the distribution registry (a blob) when installed. Every
 * reply is checked (status, and the body of a GET). On every backend of BINDLE_BENCH_BACKENDS
 * (bench/lib/backend.ts), each beside its own baselines.
 */
import { onBackend, onBackendDir, onEveryBackend, type BackendName } from '../lib/backend.js';
import { interleave, loadTest, loadTool, type Contender } from '../lib/baselines.js';
import { parcelUrl } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payload } from '../lib/data.js';
import { makeFigure, type Figure } from '../lib/results.js';
import { cpuMsOf, type BenchServer } from '../lib/server.js';
import { withSmallGet, type SmallTarget } from '../lib/small-get.js';
import { median } from '../lib/stats.js';
import { uploadParcel } from './upload.js';

const PARCEL_BYTES = 1024;

/** Figures 2b (GET and HEAD) on one backend: a server on fresh storage there, beside the peers. */
async function parcelGetOn(ctx: BenchContext, backend: BackendName): Promise<CaseResult> {
  const { runs, loadSeconds, loadConnections } = ctx.sizes;
  const data = payload(PARCEL_BYTES, 13);
  const figures: Figure[] = [];
  const notes: string[] = [];
  const seed = async (server: BenchServer): Promise<SmallTarget> => {
    const { sha256 } = await uploadParcel(ctx, server, data, '1.0.0');
    return { url: parcelUrl(server.api, 'bench.example.com/upload', '1.0.0', sha256), body: data, contentType: 'application/octet-stream' };
  };
  const dirName = onBackendDir(backend, 'parcel-get');
  await withSmallGet(
    ctx,
    dirName,
    seed,
    async ({ server, target, peers, notes: missing, scripts }) => {
      notes.push(...missing);
      for (const method of ['GET', 'HEAD'] as const) {
        const cpu = new Map<string, number[]>();
        const contenders: Contender[] = [{ name: 'bindle-server', url: target.url, pid: server.pid }, ...peers].map((p) => ({
          name: p.name,
          measure: async () => {
            const before = cpuMsOf(p.pid) ?? Number.NaN;
            const rate = await loadTest({ url: p.url, method, connections: loadConnections, seconds: loadSeconds, expect: method === 'GET' ? { body: data } : {} }, scripts);
            const used = (cpuMsOf(p.pid) ?? Number.NaN) - before;
            cpu.set(p.name, [...(cpu.get(p.name) ?? []), (used / (rate * loadSeconds)) * 1000]);
            return rate;
          },
        }));
        ctx.log(backend === 'sqlite+file' ? `  ${method}:` : `  ${method} on ${backend}:`);
        const results = await interleave(contenders, runs, ctx.log, 'req/s');
        const [bare, ...others] = peers;
        if (bare === undefined) throw new Error('no bare Node baseline');
        figures.push(
          makeFigure({
            ...onBackend(backend, `parcel-${method.toLowerCase()}`, `2b. ${PARCEL_BYTES / 1024} KiB parcel ${method}, ${loadConnections} connections`),
            unit: 'req/s',
            runs: results.get('bindle-server') ?? [],
            baseline: { title: bare.name, runs: results.get(bare.name) ?? [] },
            peers: others.map((p) => ({ title: p.name, runs: results.get(p.name) ?? [] })),
            // The targets are those of the default backend; other backends' figures are reported beside them.
            ...(backend === 'sqlite+file' ? { target: { on: 'ratio', op: '>=', bound: 0.5, text: '≥ 0.5 × bare Node from memory' } as const } : {}),
            notes: [
              `load generator: ${loadTool(method, method === 'GET' ? data : undefined)}, ${loadSeconds} s per server per round, rounds interleaved; every reply checked`,
              `server CPU time per 1000 requests (median of the recorded rounds; robust on a busy machine, where req/s is not): ${[...cpu]
                .map(([name, ms]) => `${name} ${median(ms.slice(1)).toFixed(0)} ms`)
                .join(', ')}`,
            ],
          }),
        );
      }
    },
    backend,
  );
  return { figures, notes: backend === 'sqlite+file' ? notes : [] };
}

export const parcelGetCase: BenchCase = {
  name: 'parcel-get',
  title: '1 KiB parcel GET and HEAD req/s vs bare Node from memory, nginx and the registry',
  run: (ctx: BenchContext): Promise<CaseResult> => onEveryBackend((backend) => parcelGetOn(ctx, backend)),
};
