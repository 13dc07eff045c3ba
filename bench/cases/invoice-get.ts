/**
 * Benchmark 3: requests per second of a small invoice GET (`/_i/{name}/{version}`, TOML) under
 * 32 connections, beside the strongest baselines answering the same bytes in the same
 * interleaved rounds: a bare node:http server from memory (same content type), nginx
 * (sendfile) and the distribution registry (the bytes as a blob) when installed. Every reply
 * is checked. On every backend of BINDLE_BENCH_BACKENDS (bench/lib/backend.ts), each beside
 * its own baselines. Figure 3b, on the default backend, is a second server on the same data
 * directory at the default log level (`info`: two lines per request, to a file) in the same
 * rounds; every other figure runs the server at `warn`.
 */
import { onBackend, onBackendDir, onEveryBackend, type BackendName } from '../lib/backend.js';
import { interleave, loadTest, loadTool } from '../lib/baselines.js';
import { createInvoice, signedInvoice } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { sha256Hex } from '../lib/data.js';
import { join } from 'node:path';
import { expectStatus } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { spawnServer, type BenchServer } from '../lib/server.js';
import { withSmallGet, type SmallTarget } from '../lib/small-get.js';

/** The name of the server at the default log level among the contenders. */
const INFO_SERVER = 'bindle-server (log level info)';

/** Figure 3 on one backend: a server on fresh storage there, beside the peers (and figure 3b on the default backend). */
async function invoiceGetOn(ctx: BenchContext, backend: BackendName): Promise<CaseResult> {
  const { runs, loadSeconds, loadConnections } = ctx.sizes;
  const seed = async (server: BenchServer): Promise<SmallTarget> => {
    const name = 'bench.example.com/small-invoice';
    const labels = [0, 1, 2].map((j) => ({ sha256: sha256Hex(`parcel ${j}`), size: 100 + j, mediaType: 'application/wasm', name: `part-${j}.wasm` }));
    await createInvoice(server.api, signedInvoice(ctx.keys, name, '1.0.0', labels));
    const url = `${server.api}/_i/${name}/1.0.0`;
    const reply = await expectStatus(200, url);
    return { url, body: reply.body, contentType: reply.headers['content-type'] ?? 'application/toml' };
  };
  const dirName = onBackendDir(backend, 'invoice-get');
  const { bytes, results, names, notes, tool } = await withSmallGet(
    ctx,
    dirName,
    seed,
    async ({ server, target, peers, notes: missing, scripts }) => {
      const logged = backend === 'sqlite+file' ? await spawnServer(server.directory, [], { infoLogFile: join(ctx.dir('invoice-get-log'), 'server.log') }) : undefined;
      try {
        const loggedUrl = logged === undefined ? undefined : target.url.replace(server.origin, logged.origin);
        // Also reads the invoice once, so that this server holds it as the first one does.
        if (loggedUrl !== undefined && !(await expectStatus(200, loggedUrl)).body.equals(target.body)) throw new Error(`${INFO_SERVER} does not answer the same bytes`);
        const servers = [{ name: 'bindle-server', url: target.url }, ...(loggedUrl === undefined ? [] : [{ name: INFO_SERVER, url: loggedUrl }])];
        const contenders = [...servers, ...peers].map((p) => ({
          name: p.name,
          measure: () => loadTest({ url: p.url, connections: loadConnections, seconds: loadSeconds, expect: { body: target.body } }, scripts),
        }));
        if (backend !== 'sqlite+file') ctx.log(`  on ${backend}:`);
        const measured = await interleave(contenders, runs, ctx.log, 'req/s');
        return { bytes: target.body.length, results: measured, names: peers.map((p) => p.name), notes: missing, tool: loadTool('GET', target.body) };
      } finally {
        await logged?.stop();
      }
    },
    backend,
  );
  const [bare, ...others] = names;
  if (bare === undefined) throw new Error('no bare Node baseline');
  return {
    figures: [
      makeFigure({
        ...onBackend(backend, 'invoice-get', `3. Invoice GET (${bytes} bytes TOML), ${loadConnections} connections`),
        unit: 'req/s',
        runs: results.get('bindle-server') ?? [],
        baseline: { title: bare, runs: results.get(bare) ?? [] },
        peers: others.map((peer) => ({ title: peer, runs: results.get(peer) ?? [] })),
        // The targets are those of the default backend; other backends' figures are reported beside them.
        ...(backend === 'sqlite+file' ? { target: { on: 'ratio', op: '>=', bound: 0.8, text: '≥ 0.8 × bare Node' } as const } : {}),
        notes: [`load generator: ${tool}, ${loadSeconds} s per server per round, rounds interleaved; the registry serves the bytes as a blob; the server at --log-level warn`],
      }),
      ...(results.has(INFO_SERVER)
        ? [
            makeFigure({
              id: 'invoice-get-info',
              title: `3b. Invoice GET (${bytes} bytes TOML), ${loadConnections} connections, at the default log level`,
              unit: 'req/s',
              runs: results.get(INFO_SERVER) ?? [],
              baseline: { title: bare, runs: results.get(bare) ?? [] },
              notes: [`a second server on the same data directory at --log-level info (two lines per request, to a file), in the same interleaved rounds as figure 3; no target (the issue's are at figure 3)`],
            }),
          ]
        : []),
    ],
    notes: backend === 'sqlite+file' ? notes : [],
  };
}

export const invoiceGetCase: BenchCase = {
  name: 'invoice-get',
  title: 'small invoice GET req/s vs bare Node from memory, nginx and the registry',
  run: (ctx: BenchContext): Promise<CaseResult> => onEveryBackend((backend) => invoiceGetOn(ctx, backend)),
};
