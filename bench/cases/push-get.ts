/**
 * Benchmark 6: the `bindle` CLI end to end (a new process each time, as a user runs it):
 * `bindle push` of a standalone bindle of 1,000 parcels of 4 KiB, then `bindle get` of it into
 * an empty cache; parcels per second. Each run pushes a new version with new parcel bytes. Beside
 * each run, the server's own small-upload rate: the same number of 4 KiB parcels POSTed by an
 * in-process client at concurrency 16 (bench/cases/upload.ts uploadMany) to the same server.
 * With BINDLE_BENCH_BASE_CLI_BIN (another build's bindle.cjs), each run also pushes and gets a
 * bindle of its own with that build: before/after figures from one run, beside the same server.
 * In each run the CLI, the other build and the server's own rate go in turn (first in one run,
 * last in the next). On every backend of BINDLE_BENCH_BACKENDS
 * (bench/lib/backend.ts), each with a server of its own.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Label } from '../../schema/index.js';
import { onBackend, onBackendDir, onEveryBackend, withServerOn, type BackendName } from '../lib/backend.js';
import { inRoundOrder } from '../lib/baselines.js';
import { writeStandalone } from '../../client/standalone/standalone-bindle.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import { spawnTracked, stopChild } from '../lib/cleanup.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { payload, sha256Hex } from '../lib/data.js';
import { makeFigure } from '../lib/results.js';
import { BASE_CLI_BIN, CLI_BIN, type BenchServer } from '../lib/server.js';
import { uploadMany } from './upload.js';
import { median } from '../lib/stats.js';

/** An environment with HOME and XDG_* under `home` and no BINDLE_* variables from ours. */
export function isolatedEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('BINDLE_') && v !== undefined) env[k] = v;
  }
  return { ...env, HOME: home, XDG_CACHE_HOME: join(home, '.cache'), XDG_CONFIG_HOME: join(home, '.config'), XDG_DATA_HOME: join(home, '.local', 'share') };
}

/** Runs `node client/dist/bindle.cjs ...args` (the installed command, or `bin`); resolves with its wall time, or rejects with its output. */
export async function runCli(home: string, args: readonly string[], timeoutMs = 180_000, bin: string = CLI_BIN): Promise<number> {
  const started = performance.now();
  const child = spawnTracked(process.execPath, [bin, ...args], { cwd: home, env: isolatedEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const timer = setTimeout(() => void stopChild(child, 'SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => clearTimeout(timer));
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`bindle ${args.join(' ')} exited with ${String(code)}:\n${output}`);
  return ms;
}

/** Uploads in flight at once for the server's own rate (the CLI's default concurrency too). */
const DIRECT_CONCURRENCY = 16;

/** Parcels/s of `count` new parcels of `parcelBytes` POSTed straight to the server (run `r`'s own invoice). */
async function serverUploadRate(ctx: BenchContext, api: string, r: number, count: number, parcelBytes: number): Promise<number> {
  const name = 'bench.example.com/direct-uploads';
  const version = `1.0.${r}`;
  const parcels = Array.from({ length: count }, (_, j) => {
    const data = payload(parcelBytes, 50_000_000 + r * 1_000_000 + j);
    return { sha256: sha256Hex(data), data };
  });
  const labels: Label[] = parcels.map((p, j) => ({ sha256: p.sha256, size: p.data.length, mediaType: 'application/octet-stream', name: `direct-${j}.bin` }));
  await createInvoice(api, signedInvoice(ctx.keys, name, version, labels));
  return uploadMany(parcels.map((p) => ({ url: parcelUrl(api, name, version, p.sha256), data: p.data, expect: undefined })), DIRECT_CONCURRENCY);
}

/** Figures 6 on one backend: one server on fresh storage there for all runs. */
async function pushGetOn(ctx: BenchContext, backend: BackendName): Promise<CaseResult> {
  const { runs, pushParcels: count, pushParcelBytes: parcelBytes } = ctx.sizes;
  const dir = ctx.dir(onBackendDir(backend, 'push'));
  writeKeyring(dir, ctx.keys);
  const home = ctx.dir(onBackendDir(backend, 'cli-home'));
  const keyring = join(home, 'client-keyring.toml');
  writeFileSync(keyring, ctx.keys.clientKeyringToml);
  const standalone = ctx.dir(onBackendDir(backend, 'standalone'));
  const push: number[] = [];
  const get: number[] = [];
  const basePush: number[] = [];
  const baseGet: number[] = [];
  const direct: number[] = [];
  const starts: number[] = [];
  const name = 'bench.example.com/many-parcels';
  /** `bindle push` then `bindle get` of version `1.0.<n>` (parcels of its own) with `bin` to `server`: their wall times. */
  const pushAndGet = async (server: BenchServer, n: number, bin: string): Promise<{ pushMs: number; getMs: number }> => {
    const version = `1.0.${n}`;
    const parcels = new Map<string, Buffer>();
    const labels: Label[] = [];
    for (let j = 0; j < count; j++) {
      const data = payload(parcelBytes, n * 1_000_000 + j);
      const sha256 = sha256Hex(data);
      parcels.set(sha256, data);
      labels.push({ sha256, size: data.length, mediaType: 'application/octet-stream', name: `parcel-${j}.bin` });
    }
    const bindleDir = await writeStandalone(standalone, signedInvoice(ctx.keys, name, version, labels), parcels);
    const pushMs = await runCli(home, ['-s', `${server.api}/`, '--no-progress', 'push', bindleDir], undefined, bin);
    const cache = join(home, `cache-${n}`);
    mkdirSync(cache);
    const getMs = await runCli(home, ['-s', `${server.api}/`, '-r', keyring, '-d', cache, '--no-progress', 'get', `${name}/${version}`], undefined, bin);
    const fetched = readdirSync(join(cache, canonicalId({ name, version }), 'parcels')).length;
    if (fetched !== count) throw new Error(`bindle get stored ${fetched} of ${count} parcels`);
    return { pushMs, getMs };
  };
  const line = (what: string, t: { pushMs: number; getMs: number }): string =>
    `${what}push ${(t.pushMs / 1000).toFixed(2)} s (${(count / (t.pushMs / 1000)).toFixed(0)} parcels/s), get ${(t.getMs / 1000).toFixed(2)} s (${(count / (t.getMs / 1000)).toFixed(0)} parcels/s)`;
  for (let r = 0; r < 3; r++) starts.push(await runCli(home, ['--version']));
  await withServerOn(backend, dir, async (server) => {
    for (let r = 0; r < runs; r++) {
      const base = BASE_CLI_BIN;
      let times: { pushMs: number; getMs: number } | undefined;
      let baseTimes: { pushMs: number; getMs: number } | undefined;
      // This CLI, the other build's (a version of its own each: 1.0.<r>, and 1000 + r for the
      // other build) and the server's own rate take turns to go first: this disk's small-upload
      // rate drifts during a run (ext4 skipping recently freed inodes), so whichever always ran
      // last would have been measured on a faster disk.
      const steps: Array<() => Promise<void>> = [
        async () => {
          times = await pushAndGet(server, r, CLI_BIN);
        },
        ...(base === undefined
          ? []
          : [
              async () => {
                baseTimes = await pushAndGet(server, 1000 + r, base);
              },
            ]),
        async () => {
          direct.push(await serverUploadRate(ctx, server.api, r, count, parcelBytes));
        },
      ];
      for (const step of inRoundOrder(steps, r)) await step();
      if (times === undefined) throw new Error('the round ran no push');
      push.push(count / (times.pushMs / 1000));
      get.push(count / (times.getMs / 1000));
      if (baseTimes !== undefined) {
        basePush.push(count / (baseTimes.pushMs / 1000));
        baseGet.push(count / (baseTimes.getMs / 1000));
      }
      const other = baseTimes === undefined ? '' : `; other build (${base ?? ''}): ${line('', baseTimes)}`;
      const on = backend === 'sqlite+file' ? '' : `on ${backend}, `;
      ctx.log(`  ${on}run ${r + 1}: ${line('', times)}, the server's own small-upload rate ${direct.at(-1)?.toFixed(0)} parcels/s${other}`);
    }
  });
  const ownRate = `the server's own rate: ${count} × ${parcelBytes / 1024} KiB uploads at concurrency ${DIRECT_CONCURRENCY} from an in-process client`;
  const peer = (runs: readonly number[]): { peers?: { title: string; runs: readonly number[] }[] } =>
    runs.length === 0 ? {} : { peers: [{ title: `the other build, ${BASE_CLI_BIN ?? ''} (ratio: this build ÷ it)`, runs }] };
  const startNote = `includes the CLI's process start: \`bindle --version\` takes ${median(starts).toFixed(0)} ms here`;
  return {
    figures: [
      makeFigure({
        ...onBackend(backend, 'cli.push', `6. \`bindle push\`, ${count} parcels × ${parcelBytes / 1024} KiB, end to end`),
        unit: 'parcels/s',
        runs: push,
        baseline: { title: ownRate, runs: direct },
        ...peer(basePush),
        // The targets are those of the default backend; other backends' figures are reported beside them.
        ...(backend === 'sqlite+file' ? { target: { on: 'ratio', op: '>=', bound: 0.5, text: "≥ 0.5 × the server's own small-upload rate" } as const } : {}),
        notes: [startNote],
      }),
      makeFigure({
        ...onBackend(backend, 'cli.get', `6. \`bindle get\` of the same into an empty cache`),
        unit: 'parcels/s',
        runs: get,
        baseline: { title: ownRate, runs: direct },
        ...peer(baseGet),
        ...(backend === 'sqlite+file' ? { target: { on: 'ratio', op: '>=', bound: 0.5, text: "≥ 0.5 × the server's own small-upload rate" } as const } : {}),
      }),
    ],
  };
}

export const pushGetCase: BenchCase = {
  name: 'push-get',
  title: '`bindle push` and `bindle get` of a 1,000-parcel bindle (4 KiB parcels)',
  async run(ctx: BenchContext): Promise<CaseResult> {
    if (!existsSync(CLI_BIN)) return { figures: [], skipped: `${CLI_BIN} is not built` };
    return onEveryBackend((backend) => pushGetOn(ctx, backend));
  },
};
