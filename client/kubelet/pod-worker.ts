/**
 * One static pod's life: resolve every container's module (retrying transient failures with
 * back-off, refusing the pod on anything else), run the containers, restart them as the
 * restart policy says with capped exponential back-off, write status.json after every change,
 * and stop (grace period, then kill) when the manifest goes away or the kubelet stops (a module
 * fetch still under way is abandoned at once: it settles in the background, unused), or
 * (killing at once, phase `Failed`, reason `DeadlineExceeded`) `activeDeadlineSeconds` after
 * the pod started. Each container runs with its `resources.limits` (runner.ts, cgroups.ts).
 *
 * Files under `<state>/pods/<pod>/`: `status.json`, `<container>.log` (stdout and stderr of
 * every run of that container in the CRI log format of pod-log.ts, truncated when the pod
 * starts, appended to on restarts) and
 * `<container>.data/` (the container's parcels, re-copied from the cache for every run,
 * preopened at /data).
 */
import { open, mkdir, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isBindleError } from '../../core/errors/bindle-error.js';
import type { ModuleStore, ResolvedModule } from './module-store.js';
import { expandEnvRefs } from './env-refs.js';
import { PodLogWriter } from './pod-log.js';
import { pullPolicyOf, type ContainerSpec, type PodSpec } from './pod-manifests.js';
import { podPhase, writePodStatus, type ContainerState, type ContainerStatus, type PodStatus } from './pod-status.js';
import { EXIT_START_ERROR, envRecord, launchContainer, type LaunchedContainer, type ModuleExit, type ModuleRuntime } from './runner.js';

/** Restart and retry timing. */
export interface BackoffOptions {
  /** First delay (Kubernetes: 10 s); doubles on each consecutive restart. */
  baseMs: number;
  /** Largest delay (Kubernetes: 5 min). */
  capMs: number;
  /** A run at least this long resets the back-off (Kubernetes: 10 min). */
  resetAfterMs: number;
  /** Restarts allowed per container before it is left terminated (default: no limit). */
  maxRestarts: number;
}

/** The delay before restart number `consecutive + 1`: base × 2^consecutive, capped. */
export function backoffDelay(consecutive: number, opts: Pick<BackoffOptions, 'baseMs' | 'capMs'>): number {
  const delay = opts.baseMs * 2 ** Math.min(consecutive, 52);
  return Math.min(opts.capMs, delay);
}

export interface PodWorkerOptions {
  pod: PodSpec;
  manifest: string;
  store: ModuleStore;
  /** Where and how modules run (sandbox, cgroups). */
  runtime: ModuleRuntime;
  /** `<state>/pods/<pod>`. */
  podDir: string;
  backoff: BackoffOptions;
  log: (message: string) => void;
}

/** Why a pod is stopped. */
export type StopReason = 'Deleted' | 'KubeletStopped' | 'Replaced';

interface ContainerRecord {
  spec: ContainerSpec;
  status: ContainerStatus;
  ranOnce: boolean;
  final: boolean;
  running: LaunchedContainer | undefined;
}

function now(): string {
  return new Date().toISOString();
}

/** Errors worth retrying: the server or the network, not trust or content. */
function isTransient(err: unknown): boolean {
  if (!isBindleError(err)) return true;
  return err.code === 'unavailable' || err.code === 'internal';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs one pod; see the module comment. */
export class PodWorker {
  readonly pod: PodSpec;
  readonly #opts: PodWorkerOptions;
  readonly #containers: ContainerRecord[];
  readonly #abort = new AbortController();
  readonly #startTime = now();
  #phaseOverride: { phase: 'Failed'; reason: string; message: string } | undefined;
  #note: { reason: string; message: string } | undefined;
  #stopping: StopReason | 'DeadlineExceeded' | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #writes: Promise<void> = Promise.resolve();
  #done: Promise<void> | undefined;

  constructor(opts: PodWorkerOptions) {
    this.pod = opts.pod;
    this.#opts = opts;
    this.#containers = opts.pod.containers.map((spec) => ({
      spec,
      status: {
        name: spec.name,
        image: spec.image,
        imageID: undefined,
        module: undefined,
        started: false,
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: 'ContainerCreating', message: 'resolving the module' } },
      },
      ranOnce: false,
      final: false,
      running: undefined,
    }));
  }

  /** Starts the pod in the background; `done` settles when it has stopped for good. */
  start(): void {
    const seconds = this.pod.activeDeadlineSeconds;
    if (this.#done === undefined && seconds !== undefined) {
      this.#deadline = setTimeout(() => void this.#exceedDeadline(seconds), seconds * 1000);
    }
    this.#done ??= this.#run()
      .catch((err: unknown) => {
        this.#opts.log(`pod ${this.pod.name}: internal error: ${errorText(err)}`);
      })
      .finally(() => clearTimeout(this.#deadline));
  }

  /** `activeDeadlineSeconds` ran out: every container is killed at once and the pod fails. */
  async #exceedDeadline(seconds: number): Promise<void> {
    if (this.#stopping !== undefined) return;
    const message = `the pod was active longer than its activeDeadlineSeconds (${seconds} s)`;
    this.#phaseOverride = { phase: 'Failed', reason: 'DeadlineExceeded', message };
    this.#opts.log(`pod ${this.pod.name}: DeadlineExceeded: ${message}; killing its containers`);
    await this.#halt('DeadlineExceeded', message, 0);
  }

  /** Settles when the pod will do nothing more (all containers final, last status written). */
  get done(): Promise<void> {
    return this.#done ?? Promise.resolve();
  }

  /** The current status document. */
  status(): PodStatus {
    const phase = this.#phaseOverride?.phase ?? podPhase(this.#containers);
    const why = this.#phaseOverride ?? this.#note;
    return {
      name: this.pod.name,
      manifest: this.#opts.manifest,
      phase,
      ...(why !== undefined ? { reason: why.reason, message: why.message } : {}),
      restartPolicy: this.pod.restartPolicy,
      startTime: this.#startTime,
      updatedAt: now(),
      containerStatuses: this.#containers.map((c) => structuredClone(c.status)),
    };
  }

  /**
   * Stops the pod: no more restarts or retries; running modules get `graceMs` to end on their
   * own, then are killed. Resolves once the final status is written.
   */
  async stop(reason: StopReason, graceMs = 0): Promise<void> {
    const message = reason === 'KubeletStopped' ? 'the kubelet stopped' : reason === 'Deleted' ? 'the manifest was removed' : 'the manifest changed';
    await this.#halt(reason, message, graceMs);
    await this.done;
    await this.#writes;
  }

  /** No more restarts or retries; running modules get `graceMs`, then are killed (once, by the first caller). */
  async #halt(reason: StopReason | 'DeadlineExceeded', message: string, graceMs: number): Promise<void> {
    if (this.#stopping !== undefined) return;
    this.#stopping = reason;
    this.#abort.abort();
    if (this.#phaseOverride === undefined) this.#note = { reason, message };
    const running = this.#containers.flatMap((c) => (c.running !== undefined ? [c.running] : []));
    if (running.length > 0 && graceMs > 0) {
      await Promise.race([Promise.all(running.map((r) => r.exited)), sleep(graceMs)]);
    }
    await Promise.all(running.map((r) => r.kill(`killed: ${message}`)));
  }

  #writeStatus(): Promise<void> {
    const snapshot = this.status();
    this.#writes = this.#writes
      .then(() => writePodStatus(join(this.#opts.podDir, 'status.json'), snapshot))
      .catch((err: unknown) => this.#opts.log(`pod ${this.pod.name}: cannot write status.json: ${errorText(err)}`));
    return this.#writes;
  }

  async #run(): Promise<void> {
    await mkdir(this.#opts.podDir, { recursive: true });
    await this.#writeStatus();
    const modules = await this.#resolveModules();
    if (modules !== undefined) {
      await Promise.all(this.#containers.map((c) => this.#runContainer(c, modules.get(c.spec.name))));
    }
    await this.#writeStatus();
    const status = this.status();
    this.#opts.log(`pod ${this.pod.name}: ${status.phase}${status.reason !== undefined ? ` (${status.reason})` : ''}`);
  }

  /** Resolves every container's module; undefined when the pod was refused or stopped first. */
  async #resolveModules(): Promise<Map<string, ResolvedModule> | undefined> {
    for (let attempt = 0; ; attempt++) {
      if (this.#stopping !== undefined) return this.#giveUpWaiting();
      const results = await this.#untilStopped(this.#opts.store.fetchPodModulesSettled(this.pod));
      if (results === undefined) return this.#giveUpWaiting();
      const failures = [...results].flatMap(([name, r]) => (r.ok ? [] : [{ name, error: r.error }]));
      if (failures.length === 0) {
        const modules = new Map<string, ResolvedModule>();
        for (const [name, r] of results) {
          if (!r.ok) continue;
          modules.set(name, r.module);
          const m = r.module;
          this.#opts.log(
            `pod ${this.pod.name}, container "${name}": module ${m.id} "${m.entry.label.name}" ready; fetched ${m.fetched} parcel${m.fetched === 1 ? '' : 's'}, ${m.cached} from the cache`,
          );
        }
        return modules;
      }
      const permanent = failures.filter((f) => !isTransient(f.error));
      for (const f of failures) {
        const record = this.#containers.find((c) => c.spec.name === f.name);
        if (record === undefined) continue;
        const message = `${record.spec.image}: ${errorText(f.error)}`;
        const neverPull = isBindleError(f.error, 'not_found') && pullPolicyOf(record.spec) === 'Never';
        const reason = neverPull ? 'ErrImageNeverPull' : isTransient(f.error) ? 'ImagePullBackOff' : 'ErrImagePull';
        record.status.state = { waiting: { reason, message } };
        this.#opts.log(`pod ${this.pod.name}, container "${f.name}": ${reason}: ${message}`);
      }
      if (permanent.length > 0) {
        for (const c of this.#containers) c.final = true;
        this.#phaseOverride = {
          phase: 'Failed',
          reason: 'ModuleRefused',
          message: permanent.map((f) => `container "${f.name}": ${errorText(f.error)}`).join('; '),
        };
        return undefined;
      }
      await this.#writeStatus();
      const delay = backoffDelay(attempt, this.#opts.backoff);
      if (!(await this.#pause(delay))) return this.#giveUpWaiting();
    }
  }

  /**
   * `work`'s result, or undefined as soon as the pod stops: the client library's requests cannot
   * be cancelled, so a fetch still under way when the pod stops settles in the background (its
   * downloads still fill the shared cache) and its result is dropped.
   */
  async #untilStopped<T>(work: Promise<T>): Promise<T | undefined> {
    const signal = this.#abort.signal;
    if (signal.aborted) return undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([work, stopped]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
    }
  }

  #giveUpWaiting(): undefined {
    for (const c of this.#containers) c.final = true;
    return undefined;
  }

  /** Waits `ms` unless the pod stops first; false when it stopped. */
  async #pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.#abort.signal });
      return this.#stopping === undefined;
    } catch {
      return false;
    }
  }

  async #runContainer(record: ContainerRecord, resolved: ResolvedModule | undefined): Promise<void> {
    if (resolved === undefined) {
      record.final = true;
      return;
    }
    const { spec, status } = record;
    const { backoff } = this.#opts;
    status.imageID = resolved.id;
    status.module = { name: resolved.entry.label.name, sha256: resolved.entry.label.sha256 };
    const logPath = join(this.#opts.podDir, `${spec.name}.log`);
    const dataDir = join(this.#opts.podDir, `${spec.name}.data`);
    const env = envRecord(spec.env);
    const args = [...spec.command.slice(1), ...spec.args].map((arg) => expandEnvRefs(arg, env));
    let consecutive = 0;
    for (let run = 0; this.#stopping === undefined; run++) {
      const startedAt = now();
      const exit = await this.#runOnce(record, resolved, { logPath, dataDir, args, env, truncate: run === 0, startedAt });
      const finishedAt = now();
      status.state = {
        terminated: {
          exitCode: exit.exitCode,
          reason: exit.reason,
          ...(exit.message !== undefined ? { message: exit.message } : {}),
          startedAt,
          finishedAt,
        },
      };
      status.started = false;
      status.ready = false;
      const policy = this.pod.restartPolicy;
      const restart = policy === 'Always' || (policy === 'OnFailure' && exit.exitCode !== 0);
      this.#opts.log(`pod ${this.pod.name}, container "${spec.name}": exited ${exit.exitCode} (${exit.reason})${exit.message !== undefined ? `: ${exit.message}` : ''}`);
      if (!restart || this.#stopping !== undefined || !record.ranOnce) break;
      if (status.restartCount >= backoff.maxRestarts) {
        this.#note = { reason: 'RestartLimitReached', message: `container "${spec.name}" reached the restart limit (${backoff.maxRestarts})` };
        this.#opts.log(`pod ${this.pod.name}: ${this.#note.message}`);
        break;
      }
      if (Date.parse(finishedAt) - Date.parse(startedAt) >= backoff.resetAfterMs) consecutive = 0;
      const delay = backoffDelay(consecutive, backoff);
      consecutive += 1;
      const last = status.state;
      status.lastState = last;
      status.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${delay} ms restarting container "${spec.name}"` } };
      this.#opts.log(`pod ${this.pod.name}, container "${spec.name}": restart ${status.restartCount + 1} in ${delay} ms`);
      await this.#writeStatus();
      if (!(await this.#pause(delay))) {
        status.state = last;
        break;
      }
      status.restartCount += 1;
    }
    record.final = true;
    await this.#writeStatus();
  }

  /** One run of a container; a failure to prepare it (e.g. a corrupt cache) is a StartError. */
  async #runOnce(
    record: ContainerRecord,
    resolved: ResolvedModule,
    run: { logPath: string; dataDir: string; args: string[]; env: Record<string, string>; truncate: boolean; startedAt: string },
  ): Promise<ModuleExit> {
    const handles: FileHandle[] = [];
    try {
      const log = await open(run.logPath, run.truncate ? 'w' : 'a', 0o644);
      handles.push(log);
      let launched: LaunchedContainer;
      const { spec } = record;
      try {
        launched = await launchContainer(
          resolved,
          { args: run.args, env: run.env, dataDir: run.dataDir, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
          { runtime: this.#opts.runtime, name: `${this.pod.name}.${spec.name}`, limits: spec.limits },
        );
      } catch (err) {
        return { exitCode: EXIT_START_ERROR, reason: 'StartError', message: `refused to start: ${errorText(err)}` };
      }
      const writer = new PodLogWriter(log, {
        // The full file becomes <name>.log.1 (replacing an older one): at most two files of MAX_LOG_BYTES per container.
        rotate: async (full) => {
          await rename(run.logPath, `${run.logPath}.1`);
          const next = await open(run.logPath, 'w', 0o644);
          handles.push(next);
          handles.splice(handles.indexOf(full), 1);
          await full.close();
          return next;
        },
      });
      const logged = Promise.all([
        launched.stdout === null ? undefined : writer.attach(launched.stdout, 'stdout'),
        launched.stderr === null ? undefined : writer.attach(launched.stderr, 'stderr'),
      ]).catch((err: unknown) => this.#opts.log(`pod ${this.pod.name}, container "${spec.name}": cannot write the log: ${errorText(err)}`));
      record.running = launched;
      if (this.#stopping !== undefined) await launched.kill('killed: the pod is stopping');
      record.ranOnce = true;
      record.status.started = true;
      record.status.ready = true;
      record.status.state = { running: { startedAt: run.startedAt } } satisfies ContainerState;
      await this.#writeStatus();
      const exit = await launched.exited;
      await logged;
      record.running = undefined;
      return exit;
    } finally {
      for (const h of handles) await h.close();
    }
  }
}
