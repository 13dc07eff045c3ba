/**
 * Benchmark 4: `/_q` latency (p50/p99, sequential requests over one keep-alive connection) on
 * indexes of 100,000 and 1,000,000 invoices (seeded once with the server's bulk insert, or
 * reused with --reuse-index), in strict and standard mode, each with and without a SemVer
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

/** p50/p99 of every shape on one seeded index, `runs` runs of `queries` requests per shape. */
async function measure(
  ctx: BenchContext,
  seededPath: string,
  invoices: number,
  queries: number,
): Promise<{ p50: number[][]; p99: number[][]; totals: number[][] }> {
  const dir = ctx.dir('query');
  writeKeyring(dir, ctx.keys);
  installIndex(seededPath, dir);
  const server = await spawnServer(dir);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const names = Math.floor(invoices / VERSIONS_PER_NAME);
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
    for (const shape of SHAPES) for (let i = 0; i < Math.min(50, queries); i++) await ask(shape);
    for (const list of totals) list.length = 0;
    for (let r = 0; r < ctx.sizes.runs; r++) {
      for (const [s, shape] of SHAPES.entries()) {
        const times: number[] = [];
        for (let i = 0; i < queries; i++) times.push(await ask(shape));
        p50[s]?.push(percentile(times, 50));
        p99[s]?.push(percentile(times, 99));
      }
      ctx.log(`  ${invoices.toLocaleString('en-US')} invoices, run ${r + 1}: p50/p99 ${SHAPES.map((shape, s) => `${shape.label} ${p50[s]?.at(-1)?.toFixed(2)}/${p99[s]?.at(-1)?.toFixed(2)} ms`).join(', ')}`);
    }
  } finally {
    agent.destroy();
    await server.stop();
  }
  return { p50, p99, totals };
}

/** The figures of one index size; `p50Bound` undefined = no p50 target. */
function figuresOf(invoices: number, queries: number, m: Awaited<ReturnType<typeof measure>>, p99Bound: number, p50Bound?: number): Figure[] {
  const count = invoices.toLocaleString('en-US');
  const idOf = (shape: Shape, p: string): string => `query${invoices === 100_000 ? '' : `.${count.replace(/,/g, '')}`}.${shape.label.replace(/ \+ /g, '-')}.${p}`;
  return SHAPES.flatMap((shape, s) => {
    const matched = m.totals[s] ?? [];
    const mean = matched.reduce((a, b) => a + b, 0) / Math.max(1, matched.length);
    const note = `${queries} requests per run, TOML replies (the default; up to 50 invoices each), mean total matches ${mean.toFixed(0)}`;
    return [
      makeFigure({
        id: idOf(shape, 'p99'),
        title: `4. \`_q\` ${shape.label}, p99, ${count} invoices`,
        unit: 'ms',
        runs: m.p99[s] ?? [],
        target: { on: 'value', op: '<=', bound: p99Bound, text: `≤ ${p99Bound} ms` },
        notes: [note],
      }),
      makeFigure({
        id: idOf(shape, 'p50'),
        title: `4. \`_q\` ${shape.label}, p50, ${count} invoices`,
        unit: 'ms',
        runs: m.p50[s] ?? [],
        ...(p50Bound !== undefined ? { target: { on: 'value' as const, op: '<=' as const, bound: p50Bound, text: `≤ ${p50Bound} ms` } } : {}),
      }),
    ];
  });
}

function seedNote(count: number, ms: number): string {
  const n = count.toLocaleString('en-US');
  return Number.isNaN(ms)
    ? `the ${n}-invoice index was reused from an earlier run (--reuse-index)`
    : `the ${n}-invoice index was seeded with the server's own code (SqliteInvoiceIndex.insertMany) in ${(ms / 1000).toFixed(1)} s (index only, no invoice files)`;
}

export const queryCase: BenchCase = {
  name: 'query',
  title: '_q latency p50/p99 at 100k and 1M invoices',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const { indexInvoices, largeIndexInvoices, queriesPerRun } = ctx.sizes;
    const seeded = await ctx.seededIndex();
    const figures = figuresOf(indexInvoices, queriesPerRun, await measure(ctx, seeded.path, indexInvoices, queriesPerRun), 10, 2);
    const notes = [
      `_q dataset: ${indexInvoices.toLocaleString('en-US')} (and ${largeIndexInvoices.toLocaleString('en-US')}) invoices, ${VERSIONS_PER_NAME} versions per name, ` +
        'names `<org>.<tld>/<word>-<word>/<n>` from 400 organisations and a 4,000-word generated vocabulary, every 50th yanked; ' +
        'query text alternates between the `<word>-<word>` part of a name and an organisation',
      seedNote(indexInvoices, seeded.ms),
    ];
    const large = await ctx.seededIndex(largeIndexInvoices);
    figures.push(...figuresOf(largeIndexInvoices, queriesPerRun, await measure(ctx, large.path, largeIndexInvoices, queriesPerRun), 25));
    notes.push(seedNote(largeIndexInvoices, large.ms));
    return { figures, notes };
  },
};
