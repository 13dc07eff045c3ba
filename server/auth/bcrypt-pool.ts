/**
 * bcrypt comparisons on worker threads (core/worker-pool.ts), so that a flood of credentials to
 * check (each a deliberately slow pure-JS bcrypt) never blocks the event loop that serves
 * everyone else. One pool per process, created on first use.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import { workerBeside, WorkerPool } from '../../core/worker-pool.js';
import type { BcryptJob } from './bcrypt-worker.js';

export class BcryptPool {
  readonly #pool: WorkerPool<BcryptJob, boolean>;

  /** `size` workers (default: one fewer than the cores, at least one). */
  constructor(size?: number) {
    this.#pool = new WorkerPool(workerBeside(import.meta.url, 'bcrypt-worker'), size);
  }

  /**
   * True when `password` matches the bcrypt `hash` (false for a malformed hash). Comparison is
   * bcrypt's own (its digests are compared in constant time). A worker failure is `internal`.
   */
  async compare(password: string, hash: string): Promise<boolean> {
    try {
      return await this.#pool.run({ password, hash });
    } catch (err) {
      throw new BindleError('internal', 'password verification failed', { cause: err });
    }
  }
}

let shared: BcryptPool | undefined;

/** The process's one pool. */
export function bcryptPool(): BcryptPool {
  shared ??= new BcryptPool();
  return shared;
}
