/**
 * Keeps the old generation's limit, at which V8 starts to mark it, from falling below
 * MIN_LIMIT_BYTES in the serving process. V8 counts external memory allocated since the last full
 * collection (every ArrayBuffer: each socket read of a request body is one) against that limit,
 * and only a scavenge frees the young ones (during a 100 MiB upload, one every ~30 MB received).
 * V8 sets the limit from the live size at each full collection, and the start-up compaction
 * (heap-compaction.ts) left a fresh server ~8.6 MiB live under a limit of ~18 MiB: 10 MiB of room,
 * which a streamed upload used up between two scavenges, so V8 marked and compacted the whole heap
 * after nearly every scavenge, ~3.5 times per 100 MiB uploaded (`--trace-gc`: 29-33 full
 * collections over eight 100 MiB uploads, ~40 ms of the main thread per upload; a bare Node
 * server, whose old generation stays under V8's 8 MiB activation threshold, made none). A process
 * that has not yet run a full collection has more room (here V8 first marked a growing heap at
 * ~56 MiB). The limit is V8's growing factor times the live size, and the factor can be set at run
 * time (`--heap-growing-percent`, read at each full collection): so after each full collection the
 * factor is set that puts the next limit at MIN_LIMIT_BYTES, while that takes more than doubling
 * the live size; for a larger heap V8's own factor decides, as before. The cost: a small heap under
 * load can hold up to that much before V8 collects it.
 */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import v8 from 'node:v8';

/** The old generation's limit at least: ~40 MiB above a fresh server's live size, more than the ~30 MB of a streamed body's buffers between two scavenges. */
export const MIN_LIMIT_BYTES = 48 * 2 ** 20;

/**
 * The largest growing factor this leaves to V8 (as a percentage above 1): when the floor needs
 * no more than this, V8's own factor (up to 4, from its measured collection speed) decides.
 */
const V8_OWN_FACTOR_PERCENT = 100;

/** Bytes of the old generation in use now: every space but the young generation's. */
export function oldGenerationBytes(): number {
  let bytes = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    if (space.space_name !== 'new_space' && space.space_name !== 'new_large_object_space') bytes += space.space_used_size;
  }
  return bytes;
}

/**
 * The `--heap-growing-percent` that puts the old generation's limit at `minLimit` for `liveBytes`
 * live, or 0 (V8's own factor) when that is at most V8_OWN_FACTOR_PERCENT.
 */
export function headroomPercent(liveBytes: number, minLimit: number = MIN_LIMIT_BYTES): number {
  if (liveBytes <= 0) return 0;
  const percent = Math.ceil((minLimit / liveBytes - 1) * 100);
  return percent <= V8_OWN_FACTOR_PERCENT ? 0 : percent;
}

/** Whether a `gc` performance entry is a full (mark-compact) collection. */
function isFullCollection(entry: PerformanceEntry): boolean {
  const detail: unknown = 'detail' in entry ? entry.detail : undefined;
  return typeof detail === 'object' && detail !== null && 'kind' in detail && detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

/**
 * Sets the growing factor for the old generation's size now (headroomPercent) and again after
 * every full collection, for the life of the process.
 */
export function keepOldGenerationHeadroom(minLimit: number = MIN_LIMIT_BYTES): void {
  let percent = -1;
  const update = (): void => {
    const next = headroomPercent(oldGenerationBytes(), minLimit);
    if (next === percent) return;
    percent = next;
    v8.setFlagsFromString(`--heap-growing-percent=${next}`);
  };
  update();
  const observer = new PerformanceObserver((list) => {
    if (list.getEntries().some(isFullCollection)) update();
  });
  observer.observe({ type: 'gc' });
}
