/**
 * The kubelet: watches a directory of static Pod manifests (polling) and keeps one PodWorker
 * per manifest file. A new file starts a pod; a changed file replaces its pod; a removed file
 * stops its pod (its modules are killed; logs and the last status stay on disk) without holding
 * up the other pods; a pod that replaces one of the same name starts once that one's final
 * status is written. A manifest
 * that does not parse, or whose pod name another file already uses, is reported once in the
 * log and ignored until it changes (a name conflict is retried on every pass).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModuleStore } from './module-store.js';
import { parsePodManifest, readManifestDir } from './pod-manifests.js';
import type { PodStatus } from './pod-status.js';
import { PodWorker, type BackoffOptions } from './pod-worker.js';
import type { ModuleRuntime } from './runner.js';

export interface KubeletOptions {
  store: ModuleStore;
  /** Where and how modules run: the sandbox and cgroups picked by the entry point (`detectModuleRuntime`). */
  runtime: ModuleRuntime;
  /** The directory of Pod manifests (`--pod-manifest-path`). */
  manifestDir: string;
  /** Pod state (`<stateDir>/pods/<pod>/...`). */
  stateDir: string;
  /** How often the manifest directory is read (default 1000 ms). */
  pollIntervalMs?: number;
  /** Restart back-off (defaults: Kubernetes' 10 s doubling to 5 min, reset after 10 min; no restart limit). */
  backoff?: Partial<BackoffOptions>;
  log?: (message: string) => void;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  baseMs: 10_000,
  capMs: 300_000,
  resetAfterMs: 600_000,
  maxRestarts: Number.POSITIVE_INFINITY,
});

interface ManagedPod {
  digest: string;
  worker: PodWorker;
  /** Settles once `worker.start()` has been called (after the previous pod of its name stopped). */
  started: Promise<void>;
}

/** See the module comment. `start` begins watching; `stop` ends every pod and the watch. */
export class Kubelet {
  readonly #opts: KubeletOptions;
  readonly #backoff: BackoffOptions;
  readonly #log: (message: string) => void;
  readonly #pods = new Map<string, ManagedPod>();
  /** path → digest of a manifest already reported as unusable, and whether to retry it anyway. */
  readonly #rejected = new Map<string, { digest: string; retry: boolean }>();
  /**
   * Pods being stopped, by pod name: a pass does not wait for them; a new pod of the same name
   * (same `<state>/pods/<pod>/`) starts only once its predecessor's final status is written.
   */
  readonly #stopping = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;
  #stopped = false;

  constructor(opts: KubeletOptions) {
    this.#opts = opts;
    this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.#log = opts.log ?? (() => undefined);
  }

  /** Reads the manifest directory once, then every poll interval until `stop`. */
  async start(): Promise<void> {
    await mkdir(join(this.#opts.stateDir, 'pods'), { recursive: true });
    this.#log(`watching ${this.#opts.manifestDir} for pod manifests; state in ${this.#opts.stateDir}`);
    await this.sync();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.sync().finally(() => this.#schedule());
    }, this.#opts.pollIntervalMs ?? 1000);
  }

  /** One pass over the manifest directory (passes never overlap). */
  async sync(): Promise<void> {
    this.#syncing ??= this.#syncOnce()
      .catch((err: unknown) => this.#log(`reading ${this.#opts.manifestDir} failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        this.#syncing = undefined;
      });
    return this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    if (this.#stopped) return;
    const files = await readManifestDir(this.#opts.manifestDir);
    const present = new Set(files.map((f) => f.path));
    for (const [path, managed] of this.#pods) {
      if (present.has(path)) continue;
      this.#pods.delete(path);
      this.#log(`pod ${managed.worker.pod.name}: manifest ${path} removed; stopping the pod`);
      this.#stopInBackground(managed, 'Deleted');
    }
    for (const path of this.#rejected.keys()) if (!present.has(path)) this.#rejected.delete(path);
    for (const file of files) {
      if (this.#stopped) return;
      const managed = this.#pods.get(file.path);
      if (managed?.digest === file.digest) continue;
      const rejected = this.#rejected.get(file.path);
      if (rejected?.digest === file.digest && !rejected.retry) continue;
      let pod;
      try {
        pod = parsePodManifest(file.text, file.path);
      } catch (err) {
        this.#rejected.set(file.path, { digest: file.digest, retry: false });
        this.#log(`ignoring ${file.path}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      const owner = [...this.#pods].find(([path, m]) => path !== file.path && m.worker.pod.name === pod.name);
      if (owner !== undefined) {
        if (rejected?.digest !== file.digest) {
          this.#log(`ignoring ${file.path}: pod ${pod.name} is already defined by ${owner[0]}`);
        }
        this.#rejected.set(file.path, { digest: file.digest, retry: true });
        continue;
      }
      this.#rejected.delete(file.path);
      if (managed !== undefined) {
        this.#log(`pod ${managed.worker.pod.name}: manifest ${file.path} changed; replacing the pod`);
        this.#pods.delete(file.path);
        this.#stopInBackground(managed, 'Replaced');
      }
      const worker = new PodWorker({
        pod,
        manifest: file.path,
        store: this.#opts.store,
        runtime: this.#opts.runtime,
        podDir: join(this.#opts.stateDir, 'pods', pod.name),
        backoff: this.#backoff,
        log: this.#log,
      });
      const predecessor = this.#stopping.get(pod.name);
      const started = (predecessor ?? Promise.resolve()).then(() => {
        this.#log(`pod ${pod.name}: starting from ${file.path} (${pod.containers.length} container${pod.containers.length === 1 ? '' : 's'}, restartPolicy ${pod.restartPolicy})`);
        worker.start();
      });
      this.#pods.set(file.path, { digest: file.digest, worker, started });
    }
  }

  /**
   * Stops a pod without holding up the pass (a pod slow to stop would otherwise delay every other
   * pod); a successor of the same name waits for it, and so does `stop`.
   */
  #stopInBackground(managed: ManagedPod, reason: 'Deleted' | 'Replaced'): void {
    const name = managed.worker.pod.name;
    const stopping = managed.started
      .then(() => managed.worker.stop(reason))
      .catch((err: unknown) => this.#log(`pod ${name}: stopping failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        if (this.#stopping.get(name) === stopping) this.#stopping.delete(name);
      });
    this.#stopping.set(name, stopping);
  }

  /** The current status of every pod, by pod name. */
  statuses(): Map<string, PodStatus> {
    return new Map([...this.#pods.values()].map((m) => [m.worker.pod.name, m.worker.status()]));
  }

  /**
   * Stops watching and stops every pod: running modules get `graceMs` (default 0) to end on
   * their own, then are killed; resolves when every final status is written.
   */
  async stop(graceMs = 0): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#syncing;
    const pods = [...this.#pods.values()];
    this.#pods.clear();
    await Promise.all([
      ...pods.map((m) => m.started.then(() => m.worker.stop('KubeletStopped', graceMs))),
      ...this.#stopping.values(),
    ]);
  }
}
