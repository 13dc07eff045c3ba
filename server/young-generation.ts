/**
 * Bounds V8's young generation ("new space") in the serving process. V8 doubles the two
 * semi-spaces whenever many objects survive a scavenge, up to 16 MiB each, and a grown new
 * space stays committed and resident for the life of the process: under a mixed load the
 * server's resting RSS grew by ~24 MiB from this alone (new space 8 → 32 MiB). The maximum can
 * only be given on node's command line (`--max-semi-space-size`), which `npm start`, the
 * package's `bin` and `node bindle-server.mjs` do not control; what can change at run time is the
 * growth factor. So after each garbage collection the factor is set to 1 once the semi-space
 * has reached the cap (and back to V8's default 2 below it). Smaller semi-spaces mean more
 * frequent scavenges: with 1 MiB (no growth at all) a 1 KiB parcel GET cost ~35 % more CPU.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

/** V8's default factor by which a semi-space grows. */
const DEFAULT_GROWTH_FACTOR = 2;

/**
 * Lets the young generation grow as V8 does by default, for work other than serving (the
 * one-shot commands): ./bin/launch.cts keeps it at its initial size while the process loads.
 */
export function restoreYoungGenerationGrowth(): void {
  v8.setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
}

/** The semi-space size at which the serving process stops growing its new space: 8 MiB (16 MiB of new space). */
export const MAX_SEMI_SPACE_BYTES = 8 * 2 ** 20;

/** The current size of one semi-space (V8 reports the new space as both). */
export function semiSpaceBytes(): number {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? 0 : space.space_size / 2;
}

/**
 * Keeps the semi-spaces at `maxSemiSpaceBytes` or below from now on. Collections are observed
 * between event-loop turns, so growth within one long synchronous stretch of work can pass the
 * cap by a doubling or so before it is stopped. The check runs once per batch of collections
 * observed, for the life of the server; it costs under 1 µs (`getHeapSpaceStatistics`, measured
 * at ~0.7 µs), so even a collection every few milliseconds under load makes it ~0.01 % of a core:
 * not worth sampling every Nth collection, which would let the space grow past the cap. Returns the function that stops watching and
 * restores V8's default growth.
 */
export function boundYoungGeneration(maxSemiSpaceBytes: number = MAX_SEMI_SPACE_BYTES): () => void {
  let factor = 0;
  const check = (): void => {
    const next = semiSpaceBytes() * DEFAULT_GROWTH_FACTOR <= maxSemiSpaceBytes ? DEFAULT_GROWTH_FACTOR : 1;
    if (next === factor) return;
    factor = next;
    v8.setFlagsFromString(`--semi-space-growth-factor=${next}`);
  };
  check();
  const observer = new PerformanceObserver(check);
  observer.observe({ type: 'gc' });
  return () => {
    observer.disconnect();
    restoreYoungGenerationGrowth();
  };
}
