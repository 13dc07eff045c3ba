/**
 * Bounded parallelism: run a task per item, at most `limit` at a time (the client's transfers,
 * the file parcel store's look-ups of an invoice's parcels).
 */

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
