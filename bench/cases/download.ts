/**
 * Benchmark 2: downloading a 100 MiB parcel (GET `/_i/{name}/{version}@{sha256}`), beside the
 * strongest baselines serving the same stored file in the same interleaved rounds: a bare
 * node:http server streaming it in 1 MiB chunks, nginx (sendfile) and the distribution
 * registry (a blob) when installed. Every download's status and length are checked. On every
 * backend of BINDLE_BENCH_BACKENDS (bench/lib/backend.ts); where parcels are not files (S3) the
 * peers serve a file holding the same bytes, and two more run beside them: a bare Node server
 * streaming the stored parcel's object from the S3 service with the AWS SDK (bench/bin/
 * bare-s3-server.ts, the baseline there: the plain way to serve it from Node) and the S3
 * service's own GetObject of it read by the benchmark (bench/lib/s3-direct.ts, the ceiling). A round's figure for each server is its rate over
 * DOWNLOADS_PER_ROUND downloads in a row: one 100 MiB download takes ~0.1–0.3 s here, short
 * enough for a scheduling hiccup to move a round's ratio by 20 % (bare Node alone ranged
 * 706–925 MB/s between rounds of one run).
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { PARCEL_DIRECTORY, PARCEL_FILE_SUFFIX } from '../../server/storage/file-parcel-store.js';
import { onBackend, onBackendDir, onEveryBackend, withServerOn, type BackendName } from '../lib/backend.js';
import { interleave, servePeers, type Contender } from '../lib/baselines.js';
import { parcelUrl, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payload } from '../lib/data.js';
import { downloadDiscard } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { s3Reader } from '../lib/s3-direct.js';
import { cpuMsOf, spawnBareS3Server, type ServedProcess } from '../lib/server.js';
import { mbPerSecondOver, median } from '../lib/stats.js';
import { uploadParcel } from './upload.js';

/** The S3 service itself, as a peer on postgres+s3. */
const S3_PEER = 'the S3 service itself (GetObject via the AWS SDK)';
/** A bare Node server streaming the object from the S3 service, the baseline on postgres+s3. */
const BARE_S3_PEER = 'bare Node streaming it from S3 (AWS SDK GetObject piped to the reply)';

/** Downloads measured in a row for one server's figure in one round. */
const DOWNLOADS_PER_ROUND = 5;

/** Downloads `url` `times` times in a row, checking each; their rate over all their bytes and time. */
async function downloadRate(url: string, size: number, agent: http.Agent, times: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const result = await downloadDiscard(url, agent);
    if (result.status !== 200 || result.bytes !== size) {
      throw new Error(`GET ${url}: status ${result.status}, ${result.bytes} of ${size} bytes`);
    }
    ms.push(result.ms);
  }
  return mbPerSecondOver(size, ms);
}

/** Figure 2 on one backend: a server on fresh storage there, beside the peers. */
async function downloadOn(ctx: BenchContext, backend: BackendName): Promise<CaseResult> {
  const { runs, uploadBytes: size } = ctx.sizes;
  const dir = ctx.dir(onBackendDir(backend, 'download'));
  writeKeyring(dir, ctx.keys);
  const agent = new http.Agent({ keepAlive: true });
  const cpu = new Map<string, number[]>();
  let measured: { results: Map<string, number[]>; names: string[]; notes: string[] };
  try {
    measured = await withServerOn(backend, dir, async (server, storage) => {
      const data = payload(size, 77);
      const { sha256 } = await uploadParcel(ctx, server, data, '1.0.0');
      const url = parcelUrl(server.api, 'bench.example.com/upload', '1.0.0', sha256);
      let path = join(dir, PARCEL_DIRECTORY, `${sha256}${PARCEL_FILE_SUFFIX}`);
      if (backend !== 'sqlite+file') {
        path = join(ctx.dir('download-peers'), 'payload.bin');
        writeFileSync(path, data);
      }
      const check = async (_name: string, target: string): Promise<void> => {
        await downloadRate(target, size, agent, 1);
      };
      const served = await servePeers(ctx.workRoot, { path, sha256, size, contentType: 'application/octet-stream', bare: 'file' }, check);
      // The stored parcel's object (its key in the store's layout: <prefix>/parcels/<sha256>), read straight from the S3 service and served by a bare Node server.
      const key = storage.s3 === undefined ? undefined : `${storage.s3.prefix}/parcels/${sha256}`;
      let s3: Awaited<ReturnType<typeof s3Reader>> | undefined;
      let bareS3: ServedProcess | undefined;
      try {
        if (storage.s3 !== undefined && key !== undefined) {
          s3 = await s3Reader(storage.s3, key, size);
          bareS3 = await spawnBareS3Server(storage.s3, key);
          await check(BARE_S3_PEER, bareS3.origin);
        }
        const reader = s3;
        const viaS3 = bareS3 === undefined ? [] : [{ name: BARE_S3_PEER, url: `${bareS3.origin}/`, pid: bareS3.pid }];
        const contenders: Contender[] = [{ name: 'bindle-server', url, pid: server.pid }, ...viaS3, ...served.peers].map((p) => ({
          name: p.name,
          measure: async () => {
            const before = cpuMsOf(p.pid) ?? Number.NaN;
            const rate = await downloadRate(p.url, size, agent, DOWNLOADS_PER_ROUND);
            cpu.set(p.name, [...(cpu.get(p.name) ?? []), ((cpuMsOf(p.pid) ?? Number.NaN) - before) / DOWNLOADS_PER_ROUND]);
            return rate;
          },
        }));
        if (reader !== undefined) contenders.push({ name: S3_PEER, measure: () => reader.read(DOWNLOADS_PER_ROUND) });
        if (backend !== 'sqlite+file') ctx.log(`  on ${backend}:`);
        const results = await interleave(contenders, runs, ctx.log, 'MB/s');
        const peerNames = served.peers.map((p) => p.name);
        return { results, names: s3 === undefined ? peerNames : [BARE_S3_PEER, ...peerNames, S3_PEER], notes: served.notes };
      } finally {
        s3?.close();
        await bareS3?.stop();
        await Promise.all(served.peers.map((p) => p.stop()));
      }
    });
  } finally {
    agent.destroy();
  }
  const { results, names, notes } = measured;
  const [bare, ...others] = names;
  if (bare === undefined) throw new Error('no bare Node baseline');
  return {
    figures: [
      makeFigure({
        ...onBackend(backend, 'download', `2. Parcel download, ${size / 2 ** 20} MiB`),
        unit: 'MB/s',
        runs: results.get('bindle-server') ?? [],
        baseline: { title: bare, runs: results.get(bare) ?? [] },
        peers: others.map((name) => ({ title: name, runs: results.get(name) ?? [] })),
        // The targets are those of the default backend; other backends' figures are reported beside them.
        ...(backend === 'sqlite+file' ? { target: { on: 'ratio', op: '>=', bound: 0.9, text: '≥ 0.9 × bare Node (1 MiB chunks)' } as const } : {}),
        notes: [
          `server CPU time per download (median of the recorded rounds; robust on a busy machine, where MB/s is not): ${[...cpu]
            .map(([name, ms]) => `${name} ${median(ms.slice(1)).toFixed(0)} ms`)
            .join(', ')}`,
        ],
      }),
    ],
    notes: backend === 'sqlite+file' ? notes : [],
  };
}

export const downloadCase: BenchCase = {
  name: 'download',
  title: 'parcel download vs bare Node streaming 1 MiB chunks, nginx and the registry',
  run: (ctx: BenchContext): Promise<CaseResult> => onEveryBackend((backend) => downloadOn(ctx, backend)),
};
