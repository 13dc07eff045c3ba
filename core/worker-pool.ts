/**
 * A small pool of worker threads running one job function, so that CPU-heavy work (bcrypt,
 * parsing and validating large documents) never blocks the event loop. The main side is
 * WorkerPool; a worker module calls serveJobs with its job function. Workers hold the process
 * open only while they have work; a job that throws a BindleError rejects with the same code and
 * message; a worker that dies fails its pending jobs and is replaced on next use.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parentPort, Worker } from 'node:worker_threads';
import { BindleError, isErrorCode } from './errors/bindle-error.js';

interface JobMessage<J> {
  readonly id: number;
  readonly job: J;
}

type ResultMessage<R> =
  | { readonly id: number; readonly ok: true; readonly value: R }
  | { readonly id: number; readonly ok: false; readonly code?: string; readonly message: string };

interface Pending<R> {
  resolve(value: R): void;
  reject(err: Error): void;
}

class PoolWorker<J, R> {
  readonly pending = new Map<number, Pending<R>>();
  readonly #worker: Worker;

  constructor(url: URL, onExit: (w: PoolWorker<J, R>) => void) {
    this.#worker = new Worker(url);
    this.#worker.unref();
    this.#worker.on('message', (msg: ResultMessage<R>) => {
      const job = this.pending.get(msg.id);
      if (job === undefined) return;
      this.pending.delete(msg.id);
      if (this.pending.size === 0) this.#worker.unref();
      if (msg.ok) job.resolve(msg.value);
      else job.reject(isErrorCode(msg.code) ? new BindleError(msg.code, msg.message) : new Error(msg.message));
    });
    const fail = (err: Error): void => {
      for (const job of this.pending.values()) job.reject(err);
      this.pending.clear();
      onExit(this);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`worker exited with code ${code}`)));
  }

  run(id: number, job: J): Promise<R> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.#worker.ref();
      const message: JobMessage<J> = { id, job };
      this.#worker.postMessage(message);
    });
  }
}

/**
 * The URL of worker module `stem` beside the module at `moduleUrl`, with that module's own
 * extension: `.ts` under the test loader, `.js` in the tsc output, `.mjs` in the server bundle
 * (scripts/bundle-server.mjs builds each worker as its own entry).
 */
export function workerBeside(moduleUrl: string, stem: string): URL {
  return new URL(`./${stem}${extname(fileURLToPath(moduleUrl))}`, moduleUrl);
}

/** Runs jobs on up to `size` workers (default: one fewer than the cores, at least one), least busy first. */
export class WorkerPool<J, R> {
  readonly #url: URL;
  readonly #size: number;
  readonly #workers: PoolWorker<J, R>[] = [];
  #nextId = 0;

  constructor(url: URL, size: number = Math.max(1, availableParallelism() - 1)) {
    this.#url = url;
    this.#size = size;
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#workers.reduce((n, w) => n + w.pending.size, 0);
  }

  run(job: J): Promise<R> {
    return this.#pick().run(this.#nextId++, job);
  }

  #pick(): PoolWorker<J, R> {
    if (this.#workers.length < this.#size) {
      const w = new PoolWorker<J, R>(this.#url, (dead) => {
        const i = this.#workers.indexOf(dead);
        if (i >= 0) this.#workers.splice(i, 1);
      });
      this.#workers.push(w);
      return w;
    }
    return this.#workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }
}

/** In a worker module: answers every job with `handle(job)`. */
export function serveJobs(handle: (job: never) => unknown): void {
  const port = parentPort;
  if (port === null) throw new Error('serveJobs must run in a worker thread');
  port.on('message', ({ id, job }: JobMessage<never>) => {
    let result: ResultMessage<unknown>;
    try {
      result = { id, ok: true, value: handle(job) };
    } catch (err) {
      result = err instanceof BindleError
        ? { id, ok: false, code: err.code, message: err.message }
        : { id, ok: false, message: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(result);
  });
}
