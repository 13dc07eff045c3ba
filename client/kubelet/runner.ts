/**
 * Running modules: each in its own worker thread (wasi-worker.ts), so that a busy module never
 * blocks the kubelet and can always be killed. `launchContainer` prepares a container from a
 * resolved module: it re-reads the entry module from the cache and checks it against its
 * label, fills the container's data directory with verified read-only copies of the other
 * parcels, and starts the module with that directory preopened at `/data`.
 * `runModuleOnce` is the one-shot form behind `bindle-kubelet run`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ModuleRequest, ModuleStore, PullPolicy, ResolvedModule } from './module-store.js';
import { makeWritable, populateDataDir, readVerifiedParcel, type PlacedFile } from './parcel-files.js';
import type { EnvVar } from './pod-manifests.js';
import { WASI_WORKER_SOURCE, type WasiWorkerData, type WasiWorkerReply } from './wasi-worker.js';

/** Where a container's parcels appear inside the module (a WASI preopen). */
export const DATA_MOUNT = '/data';

/** Exit codes for endings that are not the module's own, as container runtimes report them. */
export const EXIT_START_ERROR = 128;
export const EXIT_TRAP = 134;
export const EXIT_KILLED = 137;

/**
 * How a module ended. `reason` follows Kubernetes: `Completed` (exit 0), `Error` (non-zero
 * exit), plus `Trap` (the module trapped; exit 134), `StartError` (it could not be compiled or
 * instantiated; exit 128) and `Killed` (stopped by the kubelet; exit 137).
 */
export interface ModuleExit {
  exitCode: number;
  reason: 'Completed' | 'Error' | 'Trap' | 'StartError' | 'Killed';
  message?: string;
}

/** A module running in a worker. */
export interface RunningModule {
  /** Settles once, when the module has ended for any reason; never rejects. */
  readonly exited: Promise<ModuleExit>;
  /** Terminates the worker (a no-op once ended); `exited` then reports `Killed` with `message`. */
  kill(message?: string): Promise<void>;
}

/** One module invocation (what the worker is given). The file descriptors stay open: the caller owns and closes them. */
export type ModuleInvocation = WasiWorkerData;

/** Starts `invocation` in a new worker thread. */
export function startModule(invocation: ModuleInvocation): RunningModule {
  const data: WasiWorkerData = invocation;
  // No execArgv: the worker needs none of the kubelet's flags or loaders (see wasi-worker.ts).
  const worker = new Worker(WASI_WORKER_SOURCE, { eval: true, execArgv: [], workerData: data });
  let killedWith: string | undefined;
  let reply: WasiWorkerReply | undefined;
  let failure: Error | undefined;
  worker.on('message', (m: WasiWorkerReply) => {
    reply = m;
  });
  worker.on('error', (err) => {
    failure = err;
  });
  const exited = new Promise<ModuleExit>((resolve) => {
    worker.once('exit', () => {
      resolve(toExit(reply, failure, killedWith));
    });
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    exited,
    async kill(message = 'killed by the kubelet') {
      if (ended) return;
      killedWith ??= message;
      await worker.terminate();
      await exited;
    },
  };
}

function toExit(reply: WasiWorkerReply | undefined, failure: Error | undefined, killedWith: string | undefined): ModuleExit {
  if (reply?.kind === 'exit') {
    return reply.exitCode === 0 ? { exitCode: 0, reason: 'Completed' } : { exitCode: reply.exitCode, reason: 'Error' };
  }
  if (reply?.kind === 'trap') return { exitCode: EXIT_TRAP, reason: 'Trap', message: `the module trapped: ${reply.message}` };
  if (reply?.kind === 'start-error') return { exitCode: EXIT_START_ERROR, reason: 'StartError', message: reply.message };
  if (killedWith !== undefined) return { exitCode: EXIT_KILLED, reason: 'Killed', message: killedWith };
  return { exitCode: EXIT_START_ERROR, reason: 'StartError', message: `the worker thread failed: ${failure?.message ?? 'it exited without a result'}` };
}

/** Environment for WASI from a Kubernetes env list: later entries win, as in Kubernetes. */
export function envRecord(env: readonly EnvVar[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) out[e.name] = e.value;
  return out;
}

/** What `launchContainer` needs besides the resolved module. */
export interface ContainerLaunch {
  /** Arguments after argv[0] (which is the entry module's label name). */
  args: string[];
  env: Record<string, string>;
  /** Host directory to fill with the other parcels and preopen at `/data` (emptied first). */
  dataDir: string;
  stdin: number;
  stdout: number;
  stderr: number;
}

/** A launched container: the running module and where its files went. */
export interface LaunchedContainer extends RunningModule {
  files: PlacedFile[];
}

/**
 * Prepares and starts a container (see the module comment). Throws `size_mismatch` or
 * `digest_mismatch` when a cached parcel no longer matches its label; nothing runs then.
 */
export async function launchContainer(resolved: ResolvedModule, launch: ContainerLaunch): Promise<LaunchedContainer> {
  const module = await readVerifiedParcel(resolved.entry.path, resolved.entry.label);
  const files = await populateDataDir(launch.dataDir, resolved.files);
  const running = startModule({
    module,
    args: [resolved.entry.label.name, ...launch.args],
    env: launch.env,
    preopens: { [DATA_MOUNT]: launch.dataDir },
    stdin: launch.stdin,
    stdout: launch.stdout,
    stderr: launch.stderr,
  });
  return { exited: running.exited, kill: (message?: string) => running.kill(message), files };
}

/** What `runModuleOnce` runs. */
export interface OneShotRun {
  ref: string;
  pullPolicy: PullPolicy;
  request: ModuleRequest;
  args: string[];
  env: Record<string, string>;
  stdin: number;
  stdout: number;
  stderr: number;
  /** Called with the resolved module before it starts. */
  onResolved?: (resolved: ResolvedModule) => void;
  /** Aborting it kills the module (e.g. on SIGINT). */
  signal?: AbortSignal;
}

/**
 * Resolves `ref` with the store, runs it with a temporary data directory (removed afterwards)
 * and returns how it ended. Resolution and verification failures are thrown.
 */
export async function runModuleOnce(store: ModuleStore, run: OneShotRun): Promise<ModuleExit> {
  const resolved = await store.get(run.ref, run.pullPolicy, run.request);
  run.onResolved?.(resolved);
  const scratch = await mkdtemp(join(tmpdir(), 'bindle-kubelet-run-'));
  try {
    const launched = await launchContainer(resolved, {
      args: run.args,
      env: run.env,
      dataDir: join(scratch, 'data'),
      stdin: run.stdin,
      stdout: run.stdout,
      stderr: run.stderr,
    });
    const kill = (): void => void launched.kill('interrupted');
    if (run.signal?.aborted === true) kill();
    run.signal?.addEventListener('abort', kill, { once: true });
    try {
      return await launched.exited;
    } finally {
      run.signal?.removeEventListener('abort', kill);
    }
  } finally {
    await makeWritable(scratch);
    await rm(scratch, { recursive: true, force: true });
  }
}
