/**
 * Running modules: each container run in its own child process (module-process.ts), confined
 * by the sandbox (sandbox.ts: only the container's data directory, read-only at `/data`) and
 * placed in its own cgroup (cgroups.ts: memory, CPU and pids limits) before the runtime starts.
 * A module that traps, spins or exhausts its memory ends its own process only; the kubelet
 * can always kill it. `launchContainer` prepares a container from a resolved module: it
 * re-reads the entry module from the cache and checks it against its label, fills the
 * container's data directory with verified read-only copies of the other parcels, and starts
 * the module with that directory preopened at `/data`. `runModuleOnce` is the one-shot form
 * behind `bindle-kubelet run`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { detectCgroups, noCgroups, type CgroupManager, type ContainerCgroup, type ResourceLimits } from './cgroups.js';
import type { ModuleRequest, ModuleStore, PullPolicy, ResolvedModule } from './module-store.js';
import { MODULE_PROCESS_ARGS, type ModuleProcessData, type ModuleProcessReply } from './module-process.js';
import { makeWritable, populateDataDir, readVerifiedParcel, type PlacedFile } from './parcel-files.js';
import type { EnvVar } from './pod-manifests.js';
import { detectSandbox, noSandbox, runtimePath, type Sandbox, type SandboxMount } from './sandbox.js';

/** Where a container's parcels appear inside the module (a WASI preopen). */
export const DATA_MOUNT = '/data';

/** Exit codes for endings that are not the module's own, as container runtimes report them. */
export const EXIT_START_ERROR = 128;
export const EXIT_TRAP = 134;
export const EXIT_KILLED = 137;

/** Default pids limit per container (`--pod-max-pids`): the runtime's own threads and the sandbox's, with room. */
export const DEFAULT_PIDS_LIMIT = 64;

/**
 * How a module ended. `reason` follows Kubernetes: `Completed` (exit 0), `Error` (non-zero
 * exit), `OOMKilled` (killed by the kernel for its memory limit; exit 137), plus `Trap` (the
 * module trapped; exit 134), `StartError` (it could not be compiled or instantiated; exit 128)
 * and `Killed` (stopped by the kubelet; exit 137).
 */
export interface ModuleExit {
  exitCode: number;
  reason: 'Completed' | 'Error' | 'OOMKilled' | 'Trap' | 'StartError' | 'Killed';
  message?: string;
}

/**
 * Where and how module processes run; the entry point picks it once (`detectModuleRuntime`).
 * Contract: every module process is started with `sandbox` and, when `cgroups` enforces
 * anything, in a fresh cgroup with the container's limits and `pidsLimit`.
 */
export interface ModuleRuntime {
  sandbox: Sandbox;
  cgroups: CgroupManager;
  /** Processes and threads per container; undefined for no limit. */
  pidsLimit: number | undefined;
  /** The Node.js binary that runs modules (the kubelet's own). */
  runtime: string;
  /** Hears about limits that cannot be enforced. */
  log: (message: string) => void;
}

/** Finds the sandbox and the cgroup hierarchy of this machine and logs what cannot be enforced. */
export async function detectModuleRuntime(opts: { log: (message: string) => void; pidsLimit?: number | undefined }): Promise<ModuleRuntime> {
  const sandbox = await detectSandbox(opts.log);
  const cgroups = await detectCgroups(opts.log);
  if (cgroups.kind === 'none') opts.log('no writable cgroup hierarchy: memory, CPU and pids limits of pods are NOT enforced');
  return { sandbox, cgroups, pidsLimit: 'pidsLimit' in opts ? opts.pidsLimit : DEFAULT_PIDS_LIMIT, runtime: await runtimePath(), log: opts.log };
}

/** A runtime that confines and limits nothing (for embedding where the caller isolates modules). */
export async function unconfinedModuleRuntime(log: (message: string) => void = () => undefined): Promise<ModuleRuntime> {
  return { sandbox: noSandbox, cgroups: noCgroups, pidsLimit: undefined, runtime: await runtimePath(), log };
}

/** A module running in its own process. */
export interface RunningModule {
  /** Settles once, when the module has ended for any reason; never rejects. */
  readonly exited: Promise<ModuleExit>;
  /** The module's stdout and stderr when they were asked for as `'pipe'`. */
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** The container's cgroup (CPU statistics); usable until `exited` settles. */
  readonly cgroup: ContainerCgroup;
  /** Kills the process (a no-op once ended); `exited` then reports `Killed` with `message`. */
  kill(message?: string): Promise<void>;
}

/**
 * One module invocation. `preopens` maps guest paths to host directories (bound read-only);
 * the file descriptors stay open: the caller owns and closes them.
 */
export interface ModuleInvocation {
  module: Uint8Array;
  args: string[];
  env: Record<string, string>;
  preopens: Record<string, string>;
  stdin: number | 'ignore';
  stdout: number | 'pipe';
  stderr: number | 'pipe';
}

/** How to place one module process. */
export interface StartOptions {
  runtime: ModuleRuntime;
  /** Names the cgroup and the log lines, e.g. `<pod>.<container>`. */
  name: string;
  limits?: Omit<ResourceLimits, 'pids'>;
}

/**
 * The shell step that puts the process in its cgroup before the runtime starts (so every byte
 * the runtime allocates is charged): writes its pid to each `cgroup.procs` given before `--`,
 * then execs the rest, without NODE_OPTIONS (which a parent's tooling may add to every child's
 * environment, e.g. loaders the sandboxed runtime could not read).
 */
const JOIN_CGROUP_AND_EXEC = 'for f do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; unset NODE_OPTIONS; exec "$@"';

/** Starts `invocation` in a new sandboxed process in its own cgroup. */
export async function startModule(invocation: ModuleInvocation, opts: StartOptions): Promise<RunningModule> {
  const { runtime } = opts;
  const limits: ResourceLimits = { ...opts.limits, ...(runtime.pidsLimit !== undefined ? { pids: runtime.pidsLimit } : {}) };
  const cgroup = await runtime.cgroups.create(`${opts.name}.${randomBytes(4).toString('hex')}`, limits);
  if (cgroup.unenforced.length > 0) runtime.log(`${opts.name}: not enforced (no cgroup controller): ${cgroup.unenforced.join(', ')} limit`);
  const mounts: SandboxMount[] = Object.entries(invocation.preopens).map(([guest, host]) => ({ host, guest }));
  const preopens = Object.fromEntries(mounts.map((m) => [m.guest, runtime.sandbox.guestPath(m)]));
  const command = runtime.sandbox.command(runtime.runtime, MODULE_PROCESS_ARGS, mounts);
  const child = spawn('/bin/sh', ['-c', JOIN_CGROUP_AND_EXEC, 'sh', ...cgroup.procsFiles, '--', command.file, ...command.args], {
    stdio: [invocation.stdin, invocation.stdout, invocation.stderr, 'ipc'],
    serialization: 'advanced',
    env: {},
  });
  let killedWith: string | undefined;
  let reply: ModuleProcessReply | undefined;
  let failure: Error | undefined;
  child.on('message', (m: ModuleProcessReply) => {
    reply = m;
  });
  child.on('error', (err) => {
    failure = err;
  });
  const exited = new Promise<ModuleExit>((resolve) => {
    child.once('close', (code, signal) => {
      void (async () => {
        const oom = reply === undefined && killedWith === undefined && (await cgroup.oomKilled());
        await cgroup.remove();
        resolve(oom ? oomExit(opts.limits?.memoryBytes) : toExit(reply, failure, killedWith, code, signal));
      })();
    });
  });
  const data: ModuleProcessData = { module: invocation.module, args: invocation.args, env: invocation.env, preopens };
  child.send(data, (err) => {
    if (err !== null) failure ??= err;
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    exited,
    stdout: child.stdout,
    stderr: child.stderr,
    cgroup,
    async kill(message = 'killed by the kubelet') {
      if (ended) return;
      killedWith ??= message;
      child.kill('SIGKILL');
      await cgroup.killAll();
      await exited;
    },
  };
}

function oomExit(memoryBytes: number | undefined): ModuleExit {
  const limit = memoryBytes === undefined ? '' : ` (${memoryBytes} bytes)`;
  return { exitCode: EXIT_KILLED, reason: 'OOMKilled', message: `the module exceeded its memory limit${limit} and was killed by the kernel` };
}

function toExit(
  reply: ModuleProcessReply | undefined,
  failure: Error | undefined,
  killedWith: string | undefined,
  code: number | null,
  signal: NodeJS.Signals | null,
): ModuleExit {
  if (reply?.kind === 'exit') {
    return reply.exitCode === 0 ? { exitCode: 0, reason: 'Completed' } : { exitCode: reply.exitCode, reason: 'Error' };
  }
  if (reply?.kind === 'trap') return { exitCode: EXIT_TRAP, reason: 'Trap', message: `the module trapped: ${reply.message}` };
  if (reply?.kind === 'start-error') return { exitCode: EXIT_START_ERROR, reason: 'StartError', message: reply.message };
  if (killedWith !== undefined) return { exitCode: EXIT_KILLED, reason: 'Killed', message: killedWith };
  const how = failure !== undefined ? failure.message : signal !== null ? `it was killed by ${signal}` : `it exited with status ${code ?? 'unknown'} without a result`;
  return { exitCode: EXIT_START_ERROR, reason: 'StartError', message: `the module process failed: ${how}` };
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
  stdin: ModuleInvocation['stdin'];
  stdout: ModuleInvocation['stdout'];
  stderr: ModuleInvocation['stderr'];
}

/** A launched container: the running module and where its files went. */
export interface LaunchedContainer extends RunningModule {
  files: PlacedFile[];
}

/**
 * Prepares and starts a container (see the module comment). Throws `size_mismatch` or
 * `digest_mismatch` when a cached parcel no longer matches its label; nothing runs then.
 */
export async function launchContainer(resolved: ResolvedModule, launch: ContainerLaunch, opts: StartOptions): Promise<LaunchedContainer> {
  const module = await readVerifiedParcel(resolved.entry.path, resolved.entry.label);
  const files = await populateDataDir(launch.dataDir, resolved.files);
  const running = await startModule(
    {
      module,
      args: [resolved.entry.label.name, ...launch.args],
      env: launch.env,
      preopens: { [DATA_MOUNT]: launch.dataDir },
      stdin: launch.stdin,
      stdout: launch.stdout,
      stderr: launch.stderr,
    },
    opts,
  );
  return Object.assign(running, { files });
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
  runtime: ModuleRuntime;
  /** Called with the resolved module before it starts. */
  onResolved?: (resolved: ResolvedModule) => void;
  /**
   * Aborting it (e.g. on SIGINT) kills the module, or, while the module is still being resolved
   * or fetched, rejects at once with the signal's reason (the fetch settles in the background, unused).
   */
  signal?: AbortSignal;
}

/** `work`'s result, or a rejection with `signal.reason` (an Error) as soon as `signal` aborts (then `work` settles unused). */
async function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Resolves `ref` with the store, runs it with a temporary data directory (removed afterwards)
 * and returns how it ended. Resolution and verification failures are thrown, and so is the
 * signal's reason when `signal` aborts before the module started.
 */
export async function runModuleOnce(store: ModuleStore, run: OneShotRun): Promise<ModuleExit> {
  const resolved = await unlessAborted(store.get(run.ref, run.pullPolicy, run.request), run.signal);
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
    }, { runtime: run.runtime, name: `run-${process.pid}` });
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
