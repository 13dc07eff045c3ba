/**
 * Benchmark 3: requests per second of a small invoice GET (`/_i/{name}/{version}`, TOML) under
 * autocannon with 32 connections, beside a bare node:http server answering the same bytes
 * with the same content type. Runs alternate between the two.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { createInvoice, signedInvoice, writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { sha256Hex } from '../lib/data.js';
import { expectStatus } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { spawnBareServer, spawnServer } from '../lib/server.js';

async function load(url: string, connections: number, seconds: number): Promise<number> {
  const result = await autocannon({ url, connections, duration: seconds });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0 || result.requests.total === 0) {
    throw new Error(`load on ${url}: ${result.requests.total} requests, ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`);
  }
  return result.requests.total / result.duration;
}

export const invoiceGetCase: BenchCase = {
  name: 'invoice-get',
  title: 'small invoice GET req/s (autocannon) vs a bare Node http server',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, loadSeconds, loadConnections } = ctx.sizes;
    const dir = ctx.dir('invoice-get');
    writeKeyring(dir, ctx.keys);
    const server = await spawnServer(dir);
    const bindle: number[] = [];
    const bare: number[] = [];
    let bytes = 0;
    try {
      const name = 'bench.example.com/small-invoice';
      const labels = [0, 1, 2].map((j) => ({ sha256: sha256Hex(`parcel ${j}`), size: 100 + j, mediaType: 'application/wasm', name: `part-${j}.wasm` }));
      await createInvoice(server.api, signedInvoice(ctx.keys, name, '1.0.0', labels));
      const url = `${server.api}/_i/${name}/1.0.0`;
      const reply = await expectStatus(200, url);
      bytes = reply.body.length;
      const bodyPath = join(dir, 'invoice-reply.toml');
      writeFileSync(bodyPath, reply.body);
      const bareServer = await spawnBareServer({ kind: 'bytes', path: bodyPath, contentType: reply.headers['content-type'] ?? 'application/toml' });
      try {
        const same = await expectStatus(200, bareServer.origin);
        if (!same.body.equals(reply.body)) throw new Error('the bare server does not answer the same bytes');
        await load(url, loadConnections, 1);
        await load(bareServer.origin, loadConnections, 1);
        for (let r = 0; r < runs; r++) {
          bindle.push(await load(url, loadConnections, loadSeconds));
          bare.push(await load(bareServer.origin, loadConnections, loadSeconds));
          ctx.log(`  run ${r + 1}: bindle-server ${bindle.at(-1)?.toFixed(0)} req/s, bare Node ${bare.at(-1)?.toFixed(0)} req/s`);
        }
      } finally {
        await bareServer.stop();
      }
    } finally {
      await server.stop();
    }
    return {
      figures: [
        makeFigure({
          id: 'invoice-get',
          title: `3. Invoice GET (${bytes} bytes TOML), ${loadConnections} connections`,
          unit: 'req/s',
          runs: bindle,
          baseline: { title: 'bare Node http, same bytes', runs: bare },
          target: { on: 'ratio', op: '>=', bound: 0.7, text: '≥ 0.7 × bare Node' },
          notes: [`autocannon runs in the benchmark process on the same ${loadSeconds} s per run; both servers are separate processes`],
        }),
      ],
    };
  },
};
