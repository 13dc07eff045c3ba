/**
 * Starting the real `bindle-server` (the built bundle the package runs) for a benchmark: on
 * 127.0.0.1 at a port picked beforehand (the address line is logged at info level, and info
 * logging would slow every request), at log level warn (or, for the figure of the default log
 * level, at info with the log in a file), ready once `/healthz` answers 200.
 * Also the bare Node comparison servers, the `/healthz` probe process, and reading a process's
 * resident set size.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRunning, spawnTracked, stopChild } from './cleanup.js';
import { freePort, waitUntilHealthy } from './http.js';
import type { S3Target } from './s3-direct.js';

/** The repository root: the nearest ancestor of this module holding package.json and tsconfig.json. */
export const REPO_ROOT = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'tsconfig.json'))) return dir;
    const parent = resolve(dir, '..');
    if (parent === dir) throw new Error(`no repository root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
})();

/**
 * The server under test, as the package's `bin` runs it (server/bin/launch.cts, which sizes
 * libuv's thread pool and loads the bundle); BINDLE_BENCH_SERVER_BIN names another build (e.g. an
 * older commit's, for before/after figures).
 */
export const SERVER_BIN = process.env.BINDLE_BENCH_SERVER_BIN ?? join(REPO_ROOT, 'dist', 'server', 'bin', 'launch.cjs');
/** The `bindle` command as installed: the launcher that sizes libuv's pool, then loads client/dist/bindle.mjs. */
export const CLI_BIN = join(REPO_ROOT, 'client', 'dist', 'bindle.cjs');
/**
 * Another build of the `bindle` command to run beside CLI_BIN, round by round (e.g. an older
 * commit's client/dist/bindle.cjs, for before/after figures), where a case supports it: push-get.
 */
export const BASE_CLI_BIN = process.env.BINDLE_BENCH_BASE_CLI_BIN;
export const KUBELET_BIN = join(REPO_ROOT, 'client', 'dist', 'bindle-kubelet.mjs');
export const BARE_SERVER_BIN = join(REPO_ROOT, 'dist', 'bench', 'bin', 'bare-http-server.js');
export const HEALTHZ_PROBE_BIN = join(REPO_ROOT, 'dist', 'bench', 'bin', 'healthz-probe.js');
export const BARE_UPLOAD_SERVER_BIN = join(REPO_ROOT, 'dist', 'bench', 'bin', 'bare-upload-server.js');
export const BARE_S3_SERVER_BIN = join(REPO_ROOT, 'dist', 'bench', 'bin', 'bare-s3-server.js');

/** A running child process that serves HTTP. */
export interface ServedProcess {
  /** e.g. http://127.0.0.1:43123 */
  origin: string;
  pid: number;
  child: ChildProcess;
  /** The last 64 KiB the process wrote to stdout/stderr. */
  output(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/** A running bindle-server. */
export interface BenchServer extends ServedProcess {
  /** e.g. http://127.0.0.1:43123/v1 (no trailing slash) */
  api: string;
  directory: string;
}

export interface SpawnOptions {
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  nodeArgs?: readonly string[];
  /** Give up waiting for the first healthy /healthz after this long (default 60 s). */
  timeoutMs?: number;
  /** Poll interval for /healthz in ms (default 5). */
  intervalMs?: number;
  /** Listen on this port (default: a free port picked just before). */
  port?: number;
  /**
   * Run at the default log level (`info`, every request logged) with stdout, where the log goes,
   * appended to this file instead of piped to the benchmark (which would spend its own CPU on
   * the lines); `output()` then reads stderr only.
   */
  infoLogFile?: string;
  /** The server's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** This process's environment without the variables `names`. */
export function environmentWithout(...names: readonly string[]): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !names.includes(name)));
}

/** Keeps the last 64 KiB a child writes to stdout/stderr; the returned function reads them. */
export function collectOutput(child: ChildProcess): () => string {
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => output;
}

/** Node flags given to every server the run starts (set by run.ts for --profile). */
let defaultNodeArgs: readonly string[] = [];

export function setServerNodeArgs(args: readonly string[]): void {
  defaultNodeArgs = args;
}

/**
 * Starts bindle-server on `directory` (`--directory`, `--address 127.0.0.1:<free port>`,
 * `--log-level warn` unless `opts.infoLogFile`, then `args`) and resolves once /healthz answers 200.
 */
export async function spawnServer(directory: string, args: readonly string[] = [], opts: SpawnOptions = {}): Promise<BenchServer> {
  const port = opts.port ?? (await freePort());
  const origin = `http://127.0.0.1:${port}`;
  const log = opts.infoLogFile === undefined ? undefined : openSync(opts.infoLogFile, 'a');
  const child = (() => {
    try {
      return spawnTracked(
        process.execPath,
        [...(opts.nodeArgs ?? defaultNodeArgs), SERVER_BIN, '--address', `127.0.0.1:${port}`, '--directory', directory, '--log-level', log === undefined ? 'warn' : 'info', ...args],
        { stdio: ['ignore', log ?? 'pipe', 'pipe'], env: { ...(opts.env ?? process.env) } },
      );
    } finally {
      // The child holds its own copy of the descriptor.
      if (log !== undefined) closeSync(log);
    }
  })();
  const output = collectOutput(child);
  const stop = async (): Promise<void> => {
    await stopChild(child);
  };
  try {
    await waitUntilHealthy(origin, {
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: opts.intervalMs ?? 5,
      failed: () => (isRunning(child) ? undefined : `bindle-server exited (${String(child.exitCode ?? child.signalCode)}) before it answered /healthz:\n${output()}`),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin, api: `${origin}/v1`, directory, pid: child.pid ?? -1, child, output, stop };
}

/** What the bare Node server answers every request with. */
export type BareServerMode =
  | { kind: 'file'; path: string }
  | { kind: 'bytes'; path: string; contentType: string }
  | { kind: 'sink'; dir: string }
  | { kind: 'receive' };

/**
 * Starts bench/bin/bare-http-server.js (see there), with `env` as its whole environment (default:
 * this process's), and resolves once it listens.
 */
export function spawnBareServer(mode: BareServerMode, env: NodeJS.ProcessEnv = process.env): Promise<ServedProcess> {
  const args =
    mode.kind === 'file'
      ? ['file', mode.path]
      : mode.kind === 'bytes'
        ? ['bytes', mode.path, mode.contentType]
        : mode.kind === 'sink'
          ? ['sink', mode.dir]
          : ['receive', '-'];
  return spawnAnnouncingServer(BARE_SERVER_BIN, args, env);
}

/** Starts bench/bin/bare-s3-server.js (see there) serving the object `key` of `target`'s bucket; resolves once it listens. */
export function spawnBareS3Server(target: S3Target, key: string): Promise<ServedProcess> {
  return spawnAnnouncingServer(BARE_S3_SERVER_BIN, [target.endpoint, target.region, target.bucket, key]);
}

/**
 * Starts bench/bin/bare-upload-server.js (see there) storing into `dir`, the plain way (one file,
 * one fsync per body) or `durable` (the parcel store's guarantees, with libuv's pool as large as
 * the server's: server/bin/launch.cts); resolves once it listens.
 */
export function spawnBareUploadServer(dir: string, mode: 'plain' | 'durable' = 'plain'): Promise<ServedProcess> {
  if (mode === 'plain') return spawnAnnouncingServer(BARE_UPLOAD_SERVER_BIN, [dir]);
  return spawnAnnouncingServer(BARE_UPLOAD_SERVER_BIN, [dir, mode], { ...process.env, UV_THREADPOOL_SIZE: '16' });
}

/**
 * Starts `node <bin> ...args` with `env` as its whole environment, a server that announces its
 * port as bench/lib/bare-listen.ts does, and resolves once it has.
 */
async function spawnAnnouncingServer(bin: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ServedProcess> {
  const child = spawnTracked(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env } });
  const output = collectOutput(child);
  const port = await new Promise<number>((resolvePort, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      const m = /"port":(\d+)/.exec(seen);
      if (m?.[1] !== undefined) {
        child.stdout?.off('data', onData);
        resolvePort(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${basename(bin)} exited (${String(code)}) before listening:\n${output()}`)));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    child,
    output,
    stop: async () => {
      await stopChild(child);
    },
  };
}

/** A running `/healthz` probe (bench/bin/healthz-probe.ts) in its own process. */
export interface HealthProbe {
  /** Stops the probe; resolves with its latencies (ms) and failures. */
  stop(): Promise<{ latencies: number[]; failures: string[] }>;
}

/** Starts asking `<origin>/healthz` from a process of its own, one request at a time. */
export function startHealthProbe(origin: string, pauseMs = 10): HealthProbe {
  const child = spawnTracked(process.execPath, [HEALTHZ_PROBE_BIN, origin, String(pauseMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const output = collectOutput(child);
  // Only stdout: the report is its last write there.
  let report = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    report += chunk.toString('utf8');
  });
  const closed = new Promise<number | null>((resolveClose) => child.once('close', (code: number | null) => resolveClose(code)));
  return {
    async stop() {
      child.stdin?.end('stop\n');
      const code = await closed;
      if (code !== 0) throw new Error(`healthz-probe exited (${String(code)}):\n${output()}`);
      return JSON.parse(report) as { latencies: number[]; failures: string[] };
    },
  };
}

/** A process's resident set size now and its high-water mark (VmRSS, VmHWM), in bytes. */
export interface MemoryReading {
  readonly rss: number;
  readonly peak: number;
}

/** Process `pid`'s MemoryReading (from /proc/<pid>/status); undefined once it is gone. */
export function memoryOf(pid: number): MemoryReading | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m?.[1] === undefined ? Number.NaN : Number(m[1]) * 1024;
  };
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** CPU time (user + system, ms) a process has used so far (from /proc/<pid>/stat); undefined once gone. */
export function cpuMsOf(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces) start at state, field 3; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / CLOCK_TICKS;
}

/** USER_HZ: the unit of /proc/<pid>/stat times (100 on every Linux that Node supports). */
const CLOCK_TICKS = 100;
