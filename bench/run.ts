#!/usr/bin/env node
/**
 * `npm run bench`: runs the benchmarks of bench/cases against the built dist/ programs and
 * writes bench/results/latest.json and latest.md. Flags: `--only <name,...>` (upload, download, parcel-get,
 * invoice-get, query, startup, rss, soak, hostile, push-get, kubelet, cli-startup), `--quick` (small sizes, a smoke run),
 * `--profile <dir>` (servers run with --cpu-prof into <dir>), `--no-write` (print only), `--out <prefix>` (write
 * <prefix>.json and <prefix>.md instead, e.g. bench/results/backends for a partial run beside the full one),
 * `--reuse-index <file>` (seed the 100k index into <file> once and reuse it: for profiling).
 * The run is bounded: a watchdog ends it when a case runs past its time limit (10 minutes per
 * backend unless the case sets its own) and stops every process it started.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { benchBackends } from './lib/backend.js';
import { createBenchKeys } from './lib/bindles.js';
import { cleanUpNow, installCleanup } from './lib/cleanup.js';
import { BenchContext, caseTimeLimitMs, FULL_SIZES, QUICK_SIZES, type BenchCase } from './lib/context.js';
import { loadNow, machineInfo, renderMarkdown, writeReport, type BenchReport, type Figure, type Skipped } from './lib/results.js';
import { REPO_ROOT, SERVER_BIN, setServerNodeArgs } from './lib/server.js';
import { uploadCase } from './cases/upload.js';
import { downloadCase } from './cases/download.js';
import { parcelGetCase } from './cases/parcel-get.js';
import { invoiceGetCase } from './cases/invoice-get.js';
import { queryCase } from './cases/query.js';
import { startupCase } from './cases/startup.js';
import { pushGetCase } from './cases/push-get.js';
import { kubeletCase } from './cases/kubelet.js';
import { rssCase } from './cases/rss.js';
import { soakCase } from './cases/soak.js';
import { hostileCase } from './cases/hostile.js';
import { cliStartupCase } from './cases/cli-startup.js';

/** In the order of the issue, except that the CLI and kubelet come last. */
const CASES: readonly BenchCase[] = [uploadCase, downloadCase, parcelGetCase, invoiceGetCase, queryCase, startupCase, rssCase, soakCase, hostileCase, pushGetCase, kubeletCase, cliStartupCase];
/** Where the report goes without `--out`: latest.json and latest.md there. */
const DEFAULT_OUT = join(REPO_ROOT, 'bench', 'results', 'latest');

interface Flags {
  only: string[] | null;
  quick: boolean;
  profile: string | undefined;
  write: boolean;
  /** The report's files without their extensions (.json, .md). */
  out: string;
  reuseIndex: string | undefined;
}

function usage(): string {
  return `usage: npm run bench -- [--quick] [--only ${CASES.map((c) => c.name).join(',')}] [--profile <dir>] [--reuse-index <file>] [--no-write | --out <prefix>]\n`;
}

function parseFlags(argv: readonly string[]): Flags {
  const flags: Flags = { only: null, quick: false, profile: undefined, write: true, out: DEFAULT_OUT, reuseIndex: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${usage()}`);
      return v;
    };
    if (arg === '--quick') flags.quick = true;
    else if (arg === '--no-write') flags.write = false;
    else if (arg === '--only') flags.only = [...(flags.only ?? []), ...value().split(',').map((s) => s.trim()).filter((s) => s !== '')];
    else if (arg === '--profile') flags.profile = resolve(value());
    else if (arg === '--reuse-index') flags.reuseIndex = resolve(value());
    else if (arg === '--out') flags.out = resolve(value());
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage());
      process.exit(0);
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${usage()}`);
  }
  for (const name of flags.only ?? []) {
    if (!CASES.some((c) => c.name === name)) throw new Error(`unknown benchmark ${JSON.stringify(name)}\n${usage()}`);
  }
  return flags;
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run npm run build first`);
  installCleanup();
  const started = performance.now();
  const loadAtStart = loadNow();
  const log = (message: string): void => {
    process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
  };
  if (flags.profile !== undefined) {
    mkdirSync(flags.profile, { recursive: true });
    setServerNodeArgs(['--cpu-prof', `--cpu-prof-dir=${flags.profile}`]);
    log(`servers write CPU profiles into ${flags.profile}`);
  }
  const ctx = new BenchContext({
    quick: flags.quick,
    sizes: flags.quick ? QUICK_SIZES : FULL_SIZES,
    keys: createBenchKeys(),
    workParent: tmpdir(),
    log,
    ...(flags.reuseIndex !== undefined ? { reuseIndex: flags.reuseIndex } : {}),
  });
  const figures: Figure[] = [];
  const skipped: Skipped[] = [];
  const notes: string[] = [];
  if (loadAtStart > cpus().length / 2) {
    const warning = `the machine was busy when the run started (load average ${loadAtStart} on ${cpus().length} cores): figures are skewed`;
    notes.push(warning);
    log(`warning: ${warning}`);
  }
  let failed = false;
  const report = (): BenchReport => ({
    generatedAt: new Date().toISOString(),
    durationSeconds: (performance.now() - started) / 1000,
    quick: flags.quick,
    only: flags.only,
    machine: machineInfo(loadAtStart),
    figures,
    skipped,
    notes,
  });
  const finish = (): void => {
    const done = report();
    if (flags.write) {
      const paths = writeReport(flags.out, done);
      log(`wrote ${paths.json} and ${paths.markdown}`);
    }
    process.stdout.write(renderMarkdown(done));
  };

  const selected = CASES.filter((c) => flags.only === null || flags.only.includes(c.name));
  let watchdog: NodeJS.Timeout | undefined;
  /** Stops the run if `c` is still running after its time limit: the case and those after it are reported as not finished. */
  const watch = (c: BenchCase): void => {
    clearTimeout(watchdog);
    // Cases that run on every backend of BINDLE_BENCH_BACKENDS take about that many times as long.
    const timeLimitMs = caseTimeLimitMs(c, flags.quick, benchBackends().length);
    watchdog = setTimeout(() => {
      log(`${c.name}: time limit of ${(timeLimitMs / 60_000).toFixed(1)} minutes reached: stopping`);
      for (const rest of selected.slice(selected.indexOf(c))) {
        if (!figures.some((f) => f.id.startsWith(rest.name)) && !skipped.some((s) => s.case === rest.name)) {
          skipped.push({ case: rest.name, reason: 'not finished within the time limit' });
        }
      }
      cleanUpNow();
      finish();
      process.exit(1);
    }, timeLimitMs);
    watchdog.unref();
  };

  for (const c of selected) {
    watch(c);
    log(`${c.name}: ${c.title}`);
    try {
      const result = await c.run(ctx);
      figures.push(...result.figures);
      if (result.skipped !== undefined) {
        skipped.push({ case: c.name, reason: result.skipped });
        log(`${c.name}: skipped: ${result.skipped}`);
      }
      notes.push(...(result.notes ?? []));
    } catch (err) {
      failed = true;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      skipped.push({ case: c.name, reason: `FAILED: ${message.split('\n')[0] ?? message}` });
      log(`${c.name}: FAILED: ${message}`);
    }
  }
  clearTimeout(watchdog);
  cleanUpNow();
  finish();
  const missed = figures.filter((f) => f.target !== undefined && !f.target.met);
  log(`${figures.length} figures, ${missed.length} target(s) missed${missed.length > 0 ? `: ${missed.map((f) => f.id).join(', ')}` : ''}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    cleanUpNow();
    process.exitCode = 2;
  },
);
