/**
 * BufferBudget: how much memory the process's transfers of one kind (downloads read from files,
 * uploads received) may hold in their buffers together, and so how big each one's next buffer
 * is. Transfers are never refused or made to wait by it; while many are open, or what they hold
 * nears the cap, each only moves its bytes in smaller pieces. This is what keeps a flood of
 * clients that stop halfway (the connection cap's thousands) from holding a buffer of the
 * largest size each.
 */

/** The largest power of two not over `n` (n >= 1). */
function powerOfTwoAtMost(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

/**
 * The budget. A transfer counts as open from `opened()` to `closed()`, and holds the bytes it
 * `take`s until it `release`s them: `held`. The size it gets for its next buffer is the largest
 * power of two, between `smallest` and `largest`, not over the open transfers' even share of
 * `share` (two buffers each) nor half of what is left under `cap`; never more than the bytes it
 * has left. So while transfers are few they move `largest` at a time, and however many stop, what
 * they hold together stays within `cap` plus about two smallest buffers for each of them.
 */
export class BufferBudget {
  #open = 0;
  #held = 0;

  constructor(
    /** The size while the budget allows (a power of two). */
    readonly largest: number,
    /** The smallest size it ever gives (a power of two, at most `largest`). */
    readonly smallest: number,
    /** What the open transfers share: two buffers each of at most share / (2 × open). */
    readonly share: number,
    /** What the transfers may hold together before every size is the smallest. */
    readonly cap: number,
  ) {
    if (!(smallest >= 1 && smallest <= largest)) throw new RangeError(`a buffer budget needs 1 <= smallest (${smallest}) <= largest (${largest})`);
  }

  /** Transfers open now. */
  get open(): number {
    return this.#open;
  }

  /** Bytes the transfers hold now. */
  get held(): number {
    return this.#held;
  }

  /** A transfer began. */
  opened(): void {
    this.#open++;
  }

  /** A transfer ended (whatever it still holds, it releases on its own). */
  closed(): void {
    this.#open--;
  }

  /** The size of the next buffer of a transfer with `remaining` bytes left to move (at least 1). */
  size(remaining: number): number {
    const share = this.share / (2 * Math.max(1, this.#open));
    const room = (this.cap - this.#held) / 2;
    const size = Math.min(this.largest, Math.max(this.smallest, powerOfTwoAtMost(Math.max(1, Math.min(share, room)))));
    return Math.min(size, remaining);
  }

  /** A transfer took `bytes` into its buffers. */
  take(bytes: number): void {
    this.#held += bytes;
  }

  /** A transfer's `bytes` are gone from its buffers (written, or never to be). */
  release(bytes: number): void {
    this.#held -= bytes;
  }
}
