/**
 * Benchmark 4: `/_q` latency (p50/p99, sequential requests over one keep-alive connection) on
 * indexes of 100,000 and 1,000,000 invoices (seeded once with the server's bulk insert, or
 * reused with --reuse-index), in strict and standard mode, each with and without a SemVer
 * range. The query text changes with every request: alternately the application part of a
 * bindle name and an organisation's domain. On every backend of BINDLE_BENCH_BACKENDS
 * (bench/lib/backend.ts): PostgreSQL is seeded in the server's own database with
 * PostgresInvoiceIndex.insertMany; its 1,000,000-invoice index only with
 * BINDLE_BENCH_LARGE_QUERY_ALL=true (seeding it takes long).
 */
import http from 'node:http';
import { PostgresInvoiceIndex } from '../../server/storage/postgres-invoice-index.js';
import { backendSlug, onBackend, onEveryBackend, withServerOn, type BackendName } from '../lib/backend.js';
import { writeKeyring } from '../lib/bindles.js';
import { CASE_TIME_LIMIT_MS, type BenchCase, type BenchContext, type CaseResult } from '../lib/context.js';
import { httpRequest } from '../lib/http.js';
import { makeFigure, type Figure } from '../lib/results.js';
import { installIndex, mix, seededApp, seededOrg, seedInto, VERSIONS_PER_NAME } from '../lib/seed.js';
import { spawnServer, type BenchServer } from '../lib/server.js';
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

type Measured = { p50: number[][]; p99: number[][]; totals: number[][] };

/** p50/p99 of every shape on a server with `invoices` seeded invoices, `runs` runs of `queries` requests per shape. */
async function measure(ctx: BenchContext, server: BenchServer, invoices: number, queries: number): Promise<Measured> {
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
  }
  return { p50, p99, totals };
}

/** measure() on a server whose data directory holds a copy of the seeded SQLite index. */
async function measureOnSqlite(ctx: BenchContext, seededPath: string, invoices: number, queries: number): Promise<Measured> {
  const dir = ctx.dir('query');
  writeKeyring(dir, ctx.keys);
  installIndex(seededPath, dir);
  const server = await spawnServer(dir);
  try {
    return await measure(ctx, server, invoices, queries);
  } finally {
    await server.stop();
  }
}

/** measure() on a server on fresh storage on `backend`, its index seeded there first; and the seeding time. */
async function measureOn(ctx: BenchContext, backend: BackendName, invoices: number, queries: number): Promise<{ measured: Measured; seedMs: number }> {
  const dir = ctx.dir(`query-${backendSlug(backend)}`);
  writeKeyring(dir, ctx.keys);
  let seedMs = Number.NaN;
  const measured = await withServerOn(
    backend,
    dir,
    (server) => measure(ctx, server, invoices, queries),
    async (storage) => {
      if (storage.index === undefined) throw new Error(`${backend}: no index database to seed`);
      ctx.log(`seeding ${invoices.toLocaleString('en-US')} invoices on ${backend} (server code: renderInvoice + PostgresInvoiceIndex.insertMany)`);
      seedMs = await seedInto(await PostgresInvoiceIndex.open(storage.index), invoices, (done) => ctx.log(`  ${done.toLocaleString('en-US')} seeded`));
      ctx.log(`seeded in ${(seedMs / 1000).toFixed(1)} s`);
    },
  );
  return { measured, seedMs };
}

/**
 * The figures of one index size on `backend`; `p50Bound` undefined = no p50 target. The targets
 * are those of the default backend (sqlite+file); other backends' figures are reported beside them.
 */
function figuresOf(backend: BackendName, invoices: number, queries: number, m: Measured, p99Bound: number, p50Bound?: number): Figure[] {
  const count = invoices.toLocaleString('en-US');
  const idOf = (shape: Shape, p: string): string => `query${invoices === 100_000 ? '' : `.${count.replace(/,/g, '')}`}.${shape.label.replace(/ \+ /g, '-')}.${p}`;
  const targeted = backend === 'sqlite+file';
  return SHAPES.flatMap((shape, s) => {
    const matched = m.totals[s] ?? [];
    const mean = matched.reduce((a, b) => a + b, 0) / Math.max(1, matched.length);
    const note = `${queries} requests per run, TOML replies (the default; up to 50 invoices each), mean total matches ${mean.toFixed(0)}`;
    return [
      makeFigure({
        ...onBackend(backend, idOf(shape, 'p99'), `4. \`_q\` ${shape.label}, p99, ${count} invoices`),
        unit: 'ms',
        runs: m.p99[s] ?? [],
        ...(targeted ? { target: { on: 'value' as const, op: '<=' as const, bound: p99Bound, text: `≤ ${p99Bound} ms` } } : {}),
        notes: [note],
      }),
      makeFigure({
        ...onBackend(backend, idOf(shape, 'p50'), `4. \`_q\` ${shape.label}, p50, ${count} invoices`),
        unit: 'ms',
        runs: m.p50[s] ?? [],
        ...(targeted && p50Bound !== undefined ? { target: { on: 'value' as const, op: '<=' as const, bound: p50Bound, text: `≤ ${p50Bound} ms` } } : {}),
      }),
    ];
  });
}

function seedNote(count: number, ms: number, backend: BackendName = 'sqlite+file'): string {
  const n = count.toLocaleString('en-US');
  if (Number.isNaN(ms)) return `the ${n}-invoice index was reused from an earlier run (--reuse-index)`;
  const how = backend === 'sqlite+file' ? 'SqliteInvoiceIndex.insertMany' : 'PostgresInvoiceIndex.insertMany, into the server\'s database';
  return `the ${n}-invoice index on ${backend} was seeded with the server's own code (${how}) in ${(ms / 1000).toFixed(1)} s (index only, no invoice files)`;
}

/** Seeds the 1,000,000-invoice index on backends other than sqlite+file too (it takes long). */
const LARGE_EVERYWHERE = 'BINDLE_BENCH_LARGE_QUERY_ALL';

/** The `_q` figures on one backend: 100k invoices, and 1M where seeded. */
async function queryOn(ctx: BenchContext, backend: BackendName): Promise<CaseResult> {
  const { indexInvoices, largeIndexInvoices, queriesPerRun } = ctx.sizes;
  if (backend !== 'sqlite+file') {
    const small = await measureOn(ctx, backend, indexInvoices, queriesPerRun);
    const figures = figuresOf(backend, indexInvoices, queriesPerRun, small.measured, 10, 2);
    const notes = [seedNote(indexInvoices, small.seedMs, backend)];
    if (process.env[LARGE_EVERYWHERE] !== 'true') {
      notes.push(`the ${largeIndexInvoices.toLocaleString('en-US')}-invoice index is measured on ${backend} only with ${LARGE_EVERYWHERE}=true`);
      return { figures, notes };
    }
    const large = await measureOn(ctx, backend, largeIndexInvoices, queriesPerRun);
    figures.push(...figuresOf(backend, largeIndexInvoices, queriesPerRun, large.measured, 25));
    notes.push(seedNote(largeIndexInvoices, large.seedMs, backend));
    return { figures, notes };
  }
  const seeded = await ctx.seededIndex();
  const figures = figuresOf(backend, indexInvoices, queriesPerRun, await measureOnSqlite(ctx, seeded.path, indexInvoices, queriesPerRun), 10, 2);
  const notes = [
    `_q dataset: ${indexInvoices.toLocaleString('en-US')} (and ${largeIndexInvoices.toLocaleString('en-US')}) invoices, ${VERSIONS_PER_NAME} versions per name, ` +
      'names `<org>.<tld>/<word>-<word>/<n>` from 400 organisations and a 4,000-word generated vocabulary, every 50th yanked; ' +
      'query text alternates between the `<word>-<word>` part of a name and an organisation',
    seedNote(indexInvoices, seeded.ms),
  ];
  const large = await ctx.seededIndex(largeIndexInvoices);
  figures.push(...figuresOf(backend, largeIndexInvoices, queriesPerRun, await measureOnSqlite(ctx, large.path, largeIndexInvoices, queriesPerRun), 25));
  notes.push(seedNote(largeIndexInvoices, large.ms));
  return { figures, notes };
}

export const queryCase: BenchCase = {
  name: 'query',
  title: '_q latency p50/p99 at 100k and 1M invoices',
  // Seeding 1,000,000 invoices alone took 5 minutes on a quiet 2-core machine.
  timeLimitMs: (quick) => (quick ? CASE_TIME_LIMIT_MS : 3 * CASE_TIME_LIMIT_MS),
  run: (ctx: BenchContext): Promise<CaseResult> => onEveryBackend((backend) => queryOn(ctx, backend)),
};
