/**
 * Bounded parallelism: run a task per item, at most `limit` at a time (the client's transfers,
 * the file parcel store's look-ups of an invoice's parcels), and mapWithinBudget, which runs
 * cheap synchronous work in slices of the event loop and hands the rest to asynchronous work
 * once the synchronous kind turns out slow.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Runs `task` for every item with at most `limit` running at once and returns the results in
 * item order. After the first failure no new task starts; the tasks already running are
 * awaited (so nothing is left half-done in the background) and the first error is thrown.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(limit), items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

/** How mapWithinBudget spends the main thread. */
export interface MainThreadBudget {
  /** Synchronous calls run back to back for about this long (ms) before other work gets a turn. */
  sliceMs: number;
  /**
   * A slice whose calls took longer than this (ms) each, on average, ends the synchronous calls:
   * the remaining items go through the asynchronous task. An average over a slice, not one
   * call's time, so that a process preempted in the middle of a cheap call is not taken for slow work.
   */
  slowMs: number;
  /** Asynchronous tasks under way at once (mapLimit). */
  limit: number;
}

/**
 * Maps `items` with `now`, a synchronous function, for as long as its calls are cheap, and
 * returns the results in item order. The calls run in slices of about `budget.sliceMs` (a slice
 * ends with the first call that ends past it; every slice makes at least one), between which
 * the event loop gets a turn (`setImmediate`), so other requests are not held up behind a long
 * list. A slice whose calls averaged more than `budget.slowMs` (file system look-ups that had
 * to wait for the disk, say) ends the synchronous calls: its results are kept, and the items
 * after it go through `later`, the asynchronous form of the same work, at most `budget.limit` at
 * a time. So the event loop is held for at most about one slice plus one slow call. An error of
 * either form is thrown as it comes (mapLimit's rule for `later`). `clock` reads the time in ms.
 */
export async function mapWithinBudget<T, R>(
  items: readonly T[],
  now: (item: T) => R,
  later: (item: T) => Promise<R>,
  budget: MainThreadBudget,
  clock: () => number = () => performance.now(),
): Promise<R[]> {
  const results: R[] = [];
  while (results.length < items.length) {
    const sliceStart = clock();
    let calls = 0;
    let elapsed = 0;
    do {
      results.push(now(items[results.length] as T));
      calls++;
      elapsed = clock() - sliceStart;
    } while (results.length < items.length && elapsed <= budget.sliceMs);
    if (elapsed / calls > budget.slowMs) break;
    if (results.length < items.length) await nextTurn();
  }
  const rest = await mapLimit(items.slice(results.length), budget.limit, (item) => later(item));
  return results.concat(rest);
}
