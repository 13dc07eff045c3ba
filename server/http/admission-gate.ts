/**
 * Admission of expensive requests (a `/_q` page of big invoices reads and renders megabytes
 * synchronously): at most a few run at a time, and at most one is started per turn of the event
 * loop, so however many such requests are queued, cheap ones (`/healthz`, parcel reads) are read
 * and answered between them instead of waiting for all of them.
 */

/** How many admitted jobs may be under way at once (more only overlap an index's I/O waits). */
export const ADMISSION_LIMIT = 4;

/**
 * Runs async jobs in FIFO order, at most `limit` at a time, starting at most one per turn of the
 * event loop (from setImmediate). A job's slot is freed when its promise settles, whether it
 * resolves or rejects; `run` passes on its result or error.
 */
export class AdmissionGate {
  readonly #limit: number;
  readonly #waiting: Array<() => void> = [];
  #running = 0;
  #scheduled = false;

  constructor(limit = ADMISSION_LIMIT) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`admission limit must be a positive integer, not ${limit}`);
    this.#limit = limit;
  }

  /** Jobs under way now. */
  get running(): number {
    return this.#running;
  }

  /** Jobs waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves with what `job` resolves with (rejects with its error) once it was admitted and ran. */
  run<T>(job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push(() => {
        this.#running += 1;
        const release = (): void => {
          this.#running -= 1;
          this.#schedule();
        };
        let started: Promise<T>;
        try {
          started = job();
        } catch (err) {
          started = Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
        started.then(
          (value) => {
            release();
            resolve(value);
          },
          (err: unknown) => {
            release();
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
      });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#waiting.length === 0 || this.#running >= this.#limit) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#running < this.#limit) this.#waiting.shift()?.();
      this.#schedule();
    });
  }
}
