/**
 * Benchmark 4: `/_q` latency (p50/p99, sequential requests over one keep-alive connection) on
 * an index of 100,000 invoices, in strict and standard mode, each with and without a SemVer
 * range. The query text changes with every request: alternately the application part of a
 * bindle name and an organisation's domain.
 */
import http from 'node:http';
import { writeKeyring } from '../lib/bindles.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { httpRequest } from '../lib/http.js';
import { makeFigure, type Figure } from '../lib/results.js';
import { installIndex, mix, seededApp, seededOrg, VERSIONS_PER_NAME } from '../lib/seed.js';
import { spawnServer } from '../lib/server.js';
import { percentile } from '../lib/stats.js';

interface Shape {
  label: string;
  strict: boolean;
  range?: string;
}

const SHAPES: readonly Shape[] = [
  { label: 'strict', strict: true },
  { label: 'strict + range', strict: true, range: '>=1.3.0 <3.0.0' },
  { label: 'standard', strict: false },
  { label: 'standard + range', strict: false, range: '>=1.3.0 <3.0.0' },
];

/**
 * The query string of request k: alternately the application part of some seeded bindle's
 * name (matches its versions) and its organisation's domain (matches everything it publishes).
 */
function queryOf(shape: Shape, k: number, names: number): string {
  const n = mix(k, 11) % names;
  const params = new URLSearchParams({ q: k % 2 === 0 ? seededApp(n) : seededOrg(n) });
  if (shape.strict) params.set('strict', 'true');
  if (shape.range !== undefined) params.set('v', shape.range);
  return params.toString();
}

export const queryCase: BenchCase = {
  name: 'query',
  title: '_q latency p50/p99 at 100k invoices',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { runs, indexInvoices, queriesPerRun } = ctx.sizes;
    const seeded = await ctx.seededIndex();
    const dir = ctx.dir('query');
    writeKeyring(dir, ctx.keys);
    installIndex(seeded.path, dir);
    const server = await spawnServer(dir);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const names = Math.floor(indexInvoices / VERSIONS_PER_NAME);
    const p50: number[][] = SHAPES.map(() => []);
    const p99: number[][] = SHAPES.map(() => []);
    const totals: number[][] = SHAPES.map(() => []);
    let k = 0;
    const ask = async (shape: Shape): Promise<number> => {
      const url = `${server.api}/_q?${queryOf(shape, k++, names)}`;
      const started = performance.now();
      const reply = await httpRequest(url, { agent });
      const ms = performance.now() - started;
      if (reply.status !== 200) throw new Error(`GET ${url}: ${reply.status} ${reply.body.toString('utf8').slice(0, 300)}`);
      const total = /^total = (\d+)$/m.exec(reply.body.toString('utf8'))?.[1];
      if (total === undefined) throw new Error(`GET ${url}: no "total" in the reply`);
      totals[SHAPES.indexOf(shape)]?.push(Number(total));
      return ms;
    };
    try {
      for (const shape of SHAPES) for (let i = 0; i < Math.min(50, queriesPerRun); i++) await ask(shape);
      for (const list of totals) list.length = 0;
      for (let r = 0; r < runs; r++) {
        for (const [s, shape] of SHAPES.entries()) {
          const times: number[] = [];
          for (let i = 0; i < queriesPerRun; i++) times.push(await ask(shape));
          p50[s]?.push(percentile(times, 50));
          p99[s]?.push(percentile(times, 99));
        }
        ctx.log(`  run ${r + 1}: p99 ${SHAPES.map((shape, s) => `${shape.label} ${p99[s]?.at(-1)?.toFixed(2)} ms`).join(', ')}`);
      }
    } finally {
      agent.destroy();
      await server.stop();
    }
    const count = indexInvoices.toLocaleString('en-US');
    const figures: Figure[] = [];
    for (const [s, shape] of SHAPES.entries()) {
      const matched = totals[s] ?? [];
      const mean = matched.reduce((a, b) => a + b, 0) / Math.max(1, matched.length);
      const note = `${queriesPerRun} requests per run, TOML replies (the default; up to 50 invoices each), mean total matches ${mean.toFixed(0)}`;
      figures.push(
        makeFigure({
          id: `query.${shape.label.replace(/ \+ /g, '-')}.p99`,
          title: `4. \`_q\` ${shape.label}, p99, ${count} invoices`,
          unit: 'ms',
          runs: p99[s] ?? [],
          target: { on: 'value', op: '<=', bound: 10, text: '≤ 10 ms' },
          notes: [note],
        }),
        makeFigure({ id: `query.${shape.label.replace(/ \+ /g, '-')}.p50`, title: `4. \`_q\` ${shape.label}, p50, ${count} invoices`, unit: 'ms', runs: p50[s] ?? [] }),
      );
    }
    return {
      figures,
      notes: [
        `_q dataset: ${count} invoices, ${(indexInvoices / VERSIONS_PER_NAME).toLocaleString('en-US')} names × ${VERSIONS_PER_NAME} versions, ` +
          'names `<org>.<tld>/<word>-<word>/<n>` from 400 organisations and a 4,000-word generated vocabulary, every 50th yanked; ' +
          'query text alternates between the `<word>-<word>` part of a name and an organisation',
        Number.isNaN(seeded.ms)
          ? `the ${count}-invoice index was reused from an earlier run (--reuse-index)`
          : `the ${count}-invoice index was seeded with the server's own code in ${(seeded.ms / 1000).toFixed(1)} s (index only, no invoice files)`,
      ],
    };
  },
};
