/**
 * A small pool of worker threads running one job function, so that CPU-heavy work (bcrypt,
 * parsing and validating large documents) never blocks the event loop. The main side is
 * WorkerPool; a worker module calls serveJobs with its job function. Each worker runs one job at
 * a time; further jobs wait in the pool's queue, which may be bounded (a job that finds it full
 * is refused as `unavailable` with a retry delay). A job may have a time limit: a worker that
 * overruns it is terminated and replaced. Workers hold the process open only while they have
 * work, and exit once they have had none for a while (`idleMs`): a worker thread is an isolate of
 * its own, ~10–20 MiB of resident memory that one large invoice would otherwise keep for the
 * life of the server. A job that throws a BindleError rejects with the same code and message; a
 * worker that dies fails its job and is replaced.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parentPort, Worker } from 'node:worker_threads';
import { BindleError, isErrorCode } from './errors/bindle-error.js';

interface JobMessage<J> {
  readonly id: number;
  readonly job: J;
  /** The job has a time limit: the worker says when it starts it (one message more, which an untimed job does without). */
  readonly timed: boolean;
}

/** A worker's messages: a job has started (its time limit runs from here), or its result. */
type ResultMessage<R> =
  | { readonly id: number; readonly started: true }
  | { readonly id: number; readonly ok: true; readonly value: R }
  | { readonly id: number; readonly ok: false; readonly code?: string; readonly message: string };

interface Job<J, R> {
  readonly id: number;
  readonly job: J;
  resolve(value: R): void;
  reject(err: Error): void;
}

/**
 * One worker thread running at most one job; `onIdle` runs when it may take the next one, and
 * after `idleMs` without one it exits (`onExit` runs then, as when it dies).
 */
class PoolWorker<J, R> {
  #job: Job<J, R> | undefined;
  #limit: { readonly ms: number; readonly error: () => Error } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #dead = false;
  readonly #worker: Worker;
  readonly #idleMs: number;
  readonly #onIdle: (w: PoolWorker<J, R>) => void;
  readonly #onExit: (w: PoolWorker<J, R>) => void;

  constructor(url: URL, idleMs: number, onIdle: (w: PoolWorker<J, R>) => void, onExit: (w: PoolWorker<J, R>) => void) {
    this.#idleMs = idleMs;
    this.#onIdle = onIdle;
    this.#onExit = onExit;
    this.#worker = new Worker(url);
    this.#worker.unref();
    this.#worker.on('message', (msg: ResultMessage<R>) => {
      if ('started' in msg) {
        this.#startTimer(msg.id);
        return;
      }
      const job = this.#finish(msg.id);
      if (job === undefined) return;
      if (msg.ok) job.resolve(msg.value);
      else job.reject(isErrorCode(msg.code) ? new BindleError(msg.code, msg.message) : new Error(msg.message));
      this.#idleTimer = setTimeout(() => this.#retire(), this.#idleMs);
      this.#idleTimer.unref();
      this.#onIdle(this);
    });
    this.#worker.on('error', (err) => this.#die(err));
    this.#worker.on('exit', (code) => this.#die(new Error(`worker exited with code ${code}`)));
  }

  get busy(): boolean {
    return this.#job !== undefined;
  }

  /**
   * Starts `job`; `timeoutMs` (when given) after the worker begins it (not counting the worker's
   * own start-up), the worker is terminated and the job rejects with `timeoutError()`.
   */
  start(job: Job<J, R>, timeoutMs: number | undefined, timeoutError: () => Error): void {
    this.#job = job;
    this.#limit = timeoutMs === undefined ? undefined : { ms: timeoutMs, error: timeoutError };
    clearTimeout(this.#idleTimer);
    this.#worker.ref();
    const message: JobMessage<J> = { id: job.id, job: job.job, timed: timeoutMs !== undefined };
    this.#worker.postMessage(message);
  }

  #startTimer(id: number): void {
    const job = this.#job;
    const limit = this.#limit;
    if (job === undefined || job.id !== id || limit === undefined) return;
    this.#timer = setTimeout(() => {
      this.#finish(job.id);
      job.reject(limit.error());
      this.#die(undefined);
      void this.#worker.terminate();
    }, limit.ms);
    this.#timer.unref();
  }

  #finish(id: number): Job<J, R> | undefined {
    const job = this.#job;
    if (job === undefined || job.id !== id) return undefined;
    this.#job = undefined;
    clearTimeout(this.#timer);
    this.#worker.unref();
    return job;
  }

  /** Ends a worker that has had no job for `idleMs`: it leaves the pool at once, its thread exits. */
  #retire(): void {
    if (this.#job === undefined) this.stop(undefined);
  }

  /** Ends this worker now: its job (if any) rejects with `err`, it leaves the pool, its thread exits. */
  stop(err: Error | undefined): void {
    this.#die(err);
    void this.#worker.terminate();
  }

  #die(err: Error | undefined): void {
    if (this.#dead) return;
    this.#dead = true;
    const job = this.#job;
    if (job !== undefined) {
      this.#finish(job.id);
      job.reject(err ?? new Error('worker terminated'));
    }
    clearTimeout(this.#idleTimer);
    this.#onExit(this);
  }
}

/** How a WorkerPool bounds its work. */
export interface WorkerPoolOptions {
  /** Most jobs waiting for a worker (default unbounded); beyond it run() rejects with `unavailable`. */
  readonly maxQueued?: number;
  /** Seconds a refused caller is told to wait (Retry-After; default 1). */
  readonly retryAfterSeconds?: number;
  /** Longest a job may run, in milliseconds (default unlimited); its worker is then terminated. */
  readonly timeoutMs?: number;
  /** The error a job that overran timeoutMs rejects with. */
  readonly timeoutError?: () => Error;
  /** Milliseconds a worker waits for its next job before its thread exits (default DEFAULT_WORKER_IDLE_MS). */
  readonly idleMs?: number;
}

/**
 * How long an idle worker thread is kept for the next job: long enough that a burst of jobs (a
 * client publishing several large invoices, a run of logins) finds it started, short enough that
 * the memory comes back soon after.
 */
export const DEFAULT_WORKER_IDLE_MS = 30_000;

/**
 * The URL of worker module `stem` beside the module at `moduleUrl`, with that module's own
 * extension: `.ts` under the test loader, `.js` in the tsc output, `.mjs` in the server bundle
 * (scripts/bundle-server.mjs builds each worker as its own entry).
 */
export function workerBeside(moduleUrl: string, stem: string): URL {
  return new URL(`./${stem}${extname(fileURLToPath(moduleUrl))}`, moduleUrl);
}

/**
 * Runs jobs on up to `size` workers (default: one fewer than the cores, at least one), one job
 * per worker at a time, first come first served.
 */
export class WorkerPool<J, R> {
  readonly #url: URL;
  readonly #size: number;
  readonly #options: WorkerPoolOptions;
  readonly #workers: PoolWorker<J, R>[] = [];
  readonly #queue: Job<J, R>[] = [];
  #nextId = 0;
  #closed = false;

  constructor(url: URL, size: number = Math.max(1, availableParallelism() - 1), options: WorkerPoolOptions = {}) {
    this.#url = url;
    this.#size = size;
    this.#options = options;
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#queue.length + this.#workers.filter((w) => w.busy).length;
  }

  /** Worker threads in the pool, busy or idle. */
  get threads(): number {
    return this.#workers.length;
  }

  /**
   * Runs `job` on a worker; rejects with `unavailable` (carrying retryAfterSeconds) when the
   * queue is full, and with `unavailable` once the pool is closed.
   */
  run(job: J): Promise<R> {
    const { maxQueued, retryAfterSeconds = 1 } = this.#options;
    if (this.#closed) return Promise.reject(closedError());
    if (maxQueued !== undefined && this.#queue.length >= maxQueued && this.#idle() === undefined) {
      return Promise.reject(new BindleError('unavailable', `the server is busy: ${maxQueued} jobs are already waiting for a worker; try again shortly`, { retryAfterSeconds }));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, job, resolve, reject });
      this.#dispatch();
    });
  }

  /**
   * Ends the pool: jobs waiting or running reject with `unavailable`, every worker thread is
   * terminated, and later run() calls reject. For the owner of the pool shutting down.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(closedError());
    for (const worker of [...this.#workers]) worker.stop(closedError());
  }

  #idle(): PoolWorker<J, R> | undefined {
    const idle = this.#workers.find((w) => !w.busy);
    if (idle !== undefined || this.#workers.length >= this.#size) return idle;
    const w = new PoolWorker<J, R>(this.#url, this.#options.idleMs ?? DEFAULT_WORKER_IDLE_MS, () => this.#dispatch(), (dead) => {
      const i = this.#workers.indexOf(dead);
      if (i >= 0) this.#workers.splice(i, 1);
      this.#dispatch();
    });
    this.#workers.push(w);
    return w;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const worker = this.#idle();
      if (worker === undefined) return;
      const job = this.#queue.shift() as Job<J, R>;
      const { timeoutMs, timeoutError = () => new Error(`job ran longer than ${timeoutMs} ms`) } = this.#options;
      worker.start(job, timeoutMs, timeoutError);
    }
  }
}

function closedError(): BindleError {
  return new BindleError('unavailable', 'the worker pool is closed');
}

/** In a worker module: answers every job with `handle(job)`. */
export function serveJobs(handle: (job: never) => unknown): void {
  const port = parentPort;
  if (port === null) throw new Error('serveJobs must run in a worker thread');
  port.on('message', ({ id, job, timed }: JobMessage<never>) => {
    if (timed) port.postMessage({ id, started: true } satisfies ResultMessage<unknown>);
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
