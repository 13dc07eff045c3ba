/**
 * IdleWatch: the one timer by which the S3 store's part buffers are let go once unused (an
 * upload's spares, PartWriter in ./s3-parts.ts; the free read-back buffers, ./read-back-pool.ts),
 * and IDLE_RELEASE_MS, how long that is.
 */

/**
 * How long part buffers may go unused before they are let go: an upload's spares once it receives
 * nothing (PartWriter), the free read-back buffers once none is lent or given back (ReadBackPool).
 */
export const IDLE_RELEASE_MS = 1000;

/**
 * Runs `onIdle` once a whole IDLE_RELEASE_MS has passed with no `touch` while `busy()` was false
 * (so between one and two IDLE_RELEASE_MS after the last one). `arm` starts watching unless it
 * is already; it stops after `onIdle` or `clear`. One timer, refreshed when it finds activity,
 * so `touch` costs no timer call.
 */
export class IdleWatch {
  #touches = 0;
  #touchesSeen = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onIdle: () => void,
    private readonly busy: () => boolean = () => false,
  ) {}

  /** Counts activity: the watch waits a whole period more. */
  touch(): void {
    this.#touches++;
  }

  /** Starts watching, unless it is watching already. */
  arm(): void {
    if (this.#timer !== undefined) return;
    this.#touchesSeen = this.#touches;
    const timer = setTimeout(() => {
      if (this.busy() || this.#touches !== this.#touchesSeen) {
        this.#touchesSeen = this.#touches;
        timer.refresh();
        return;
      }
      this.#timer = undefined;
      this.onIdle();
    }, IDLE_RELEASE_MS);
    timer.unref();
    this.#timer = timer;
  }

  /** Stops watching. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
