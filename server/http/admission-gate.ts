/**
 * Admission of expensive requests (a `/_q` page of big invoices reads and renders megabytes
 * synchronously): at most a few run at a time, and at most one is started per turn of the event
 * loop, so however many such requests are queued, cheap ones (`/healthz`, parcel reads) are read
 * and answered between them instead of waiting for all of them. A queued job whose request is
 * no longer wanted (its client has gone) is dropped when its turn comes, instead of run.
 */

/** How many admitted jobs may be under way at once (more only overlap an index's I/O waits). */
export const ADMISSION_LIMIT = 4;

/** What `AdmissionGate.run` rejects with when its job was dropped unrun (no longer wanted). */
export class AdmissionSkipped extends Error {
  constructor() {
    super('the job was dropped before it ran: no longer wanted');
    this.name = 'AdmissionSkipped';
  }
}

/**
 * Runs async jobs in FIFO order, at most `limit` at a time, starting at most one per turn of the
 * event loop (from setImmediate). A job's slot is freed when its promise settles, whether it
 * resolves or rejects; `run` passes on its result or error.
 */
export class AdmissionGate {
  readonly #limit: number;
  /** Each starts its job unless it is no longer wanted; returns whether it started it. */
  readonly #waiting: Array<() => boolean> = [];
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

  /**
   * Resolves with what `job` resolves with (rejects with its error) once it was admitted and ran.
   * When its turn comes and `wanted` returns false, the job is dropped unrun (taking neither a
   * slot nor the turn) and this rejects with AdmissionSkipped.
   */
  run<T>(job: () => Promise<T>, wanted: () => boolean = () => true): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push(() => {
        if (!wanted()) {
          reject(new AdmissionSkipped());
          return false;
        }
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
        return true;
      });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#waiting.length === 0 || this.#running >= this.#limit) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#running < this.#limit) {
        for (let start = this.#waiting.shift(); start !== undefined && !start(); start = this.#waiting.shift());
      }
      this.#schedule();
    });
  }
}
