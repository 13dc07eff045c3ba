/**
 * bcrypt comparisons on worker threads, so that a flood of credentials to check (each a
 * deliberately slow pure-JS bcrypt) never blocks the event loop that serves everyone else. One
 * pool per process, created on first use; its workers hold the process open only while they have
 * work. The worker file sits next to this module: `.ts` under the test loader, `.js` in the tsc
 * output, `.mjs` in the server bundle (scripts/bundle-server.mjs builds it as its own entry).
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { BcryptJob, BcryptResult } from './bcrypt-worker.js';

interface Pending {
  resolve(matches: boolean): void;
  reject(err: Error): void;
}

class PoolWorker {
  readonly pending = new Map<number, Pending>();
  readonly #worker: Worker;

  constructor(url: URL, onExit: (w: PoolWorker) => void) {
    this.#worker = new Worker(url);
    this.#worker.unref();
    this.#worker.on('message', (result: BcryptResult) => {
      const job = this.pending.get(result.id);
      if (job === undefined) return;
      this.pending.delete(result.id);
      if (this.pending.size === 0) this.#worker.unref();
      if (result.error !== undefined) job.reject(new Error(`bcrypt failed: ${result.error}`));
      else job.resolve(result.matches);
    });
    const fail = (err: Error): void => {
      for (const job of this.pending.values()) job.reject(err);
      this.pending.clear();
      onExit(this);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`bcrypt worker exited with code ${code}`)));
  }

  run(job: BcryptJob): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      this.#worker.ref();
      this.#worker.postMessage(job);
    });
  }
}

/** Where the worker module is: beside this one, with this module's own extension. */
function workerUrl(): URL {
  const ext = extname(fileURLToPath(import.meta.url));
  return new URL(`./bcrypt-worker${ext}`, import.meta.url);
}

/**
 * A fixed set of workers (one fewer than the cores, at least one); a job goes to the worker with
 * the fewest pending jobs. A worker that dies fails its pending jobs and is replaced on next use.
 */
export class BcryptPool {
  readonly #size: number;
  readonly #workers: PoolWorker[] = [];
  #nextId = 0;

  constructor(size: number = Math.max(1, availableParallelism() - 1)) {
    this.#size = size;
  }

  /**
   * True when `password` matches the bcrypt `hash`. Comparison is bcrypt's own (its digests are
   * compared in constant time). A worker failure is `internal`.
   */
  async compare(password: string, hash: string): Promise<boolean> {
    try {
      return await this.#pick().run({ id: this.#nextId++, password, hash });
    } catch (err) {
      throw new BindleError('internal', 'password verification failed', { cause: err });
    }
  }

  #pick(): PoolWorker {
    if (this.#workers.length < this.#size) {
      const w = new PoolWorker(workerUrl(), (dead) => {
        const i = this.#workers.indexOf(dead);
        if (i >= 0) this.#workers.splice(i, 1);
      });
      this.#workers.push(w);
      return w;
    }
    return this.#workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }
}

let shared: BcryptPool | undefined;

/** The process's one pool. */
export function bcryptPool(): BcryptPool {
  shared ??= new BcryptPool();
  return shared;
}
