/**
 * Admission of expensive requests (a `/_q` page of big invoices reads and renders megabytes
 * synchronously): at most a few run at a time, and at most one is started per turn of the event
 * loop, so however many such requests are queued, cheap ones (`/healthz`, parcel reads) are read
 * and answered between them instead of waiting for all of them. Waiting jobs are queued per
 * client (the caller names it: for `/_q`, the request's address) and clients take turns: a
 * client that queues many jobs delays another client's next job by the jobs already running, not
 * by all of its own. A queued job whose request is no longer wanted (its client has gone) is
 * dropped when its turn comes, instead of run.
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

/** Starts its job unless it is no longer wanted; returns whether it started it. */
type Start = () => boolean;

/**
 * Runs async jobs at most `limit` at a time, starting at most one per turn of the event loop
 * (from setImmediate). Each client's jobs start in the order queued; clients with waiting jobs
 * take turns, in the order in which each came to have one (round robin), so one client's
 * backlog never holds another's jobs until it is worked off. A job's slot is freed when its
 * promise settles, whether it resolves or rejects; `run` passes on its result or error.
 */
export class AdmissionGate {
  readonly #limit: number;
  /** Waiting jobs by client; a client is here only while it has one, in turn order (a Map keeps insertion order). */
  readonly #waiting = new Map<string, Start[]>();
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

  /** Jobs waiting for their turn (counted over the clients' queues when asked). */
  get waiting(): number {
    let jobs = 0;
    for (const queue of this.#waiting.values()) jobs += queue.length;
    return jobs;
  }

  /**
   * Resolves with what `job` resolves with (rejects with its error) once it was admitted and ran.
   * The job waits behind `client`'s earlier jobs, and takes its turn among the other clients'
   * (all jobs queued without a client are one client's, so they run in FIFO order). When its
   * turn comes and `wanted` returns false, the job is dropped unrun (taking neither a slot nor
   * the turn) and this rejects with AdmissionSkipped.
   */
  run<T>(job: () => Promise<T>, wanted: () => boolean = () => true, client = ''): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#enqueue(client, () => {
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

  #enqueue(client: string, start: Start): void {
    const queue = this.#waiting.get(client);
    if (queue === undefined) this.#waiting.set(client, [start]);
    else queue.push(start);
  }

  /** The next waiting job: the first of the client whose turn it is, which goes to the back of the turn order if it has more. */
  #next(): Start | undefined {
    const turn = this.#waiting.entries().next();
    if (turn.done === true) return undefined;
    const [client, queue] = turn.value;
    const start = queue.shift();
    this.#waiting.delete(client);
    if (queue.length > 0) this.#waiting.set(client, queue);
    return start;
  }

  #schedule(): void {
    if (this.#scheduled || this.#waiting.size === 0 || this.#running >= this.#limit) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#running < this.#limit) {
        for (let start = this.#next(); start !== undefined && !start(); start = this.#next());
      }
      this.#schedule();
    });
  }
}
