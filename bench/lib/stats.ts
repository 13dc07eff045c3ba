/**
 * The statistics every benchmark figure is made of: median, percentiles (nearest rank) and the
 * median/min/max summary of several runs.
 */

/** Several runs of one measurement: their median, minimum and maximum, and the runs themselves. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Every run's value, in the order measured. */
  runs: number[];
}

function sortedCopy(values: readonly number[]): number[] {
  if (values.length === 0) throw new RangeError('no values: a statistic needs at least one');
  for (const v of values) {
    if (!Number.isFinite(v)) throw new RangeError(`not a finite number: ${String(v)}`);
  }
  return [...values].sort((a, b) => a - b);
}

/** The median: the middle value, or the mean of the two middle values for an even count. */
export function median(values: readonly number[]): number {
  const sorted = sortedCopy(values);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}

/**
 * The p-th percentile (0 < p <= 100) by the nearest-rank method: the smallest value with at
 * least p % of the values at or below it. p = 0 gives the minimum.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be between 0 and 100, got ${String(p)}`);
  const sorted = sortedCopy(values);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Median, minimum and maximum of the runs. */
export function summarize(runs: readonly number[]): Summary {
  const sorted = sortedCopy(runs);
  return { median: median(sorted), min: sorted[0] ?? Number.NaN, max: sorted[sorted.length - 1] ?? Number.NaN, runs: [...runs] };
}

/** Megabytes (10^6 bytes) per second for `bytes` moved in `ms` milliseconds. */
export function mbPerSecond(bytes: number, ms: number): number {
  if (!(ms > 0)) throw new RangeError(`duration must be positive, got ${String(ms)} ms`);
  return bytes / 1e6 / (ms / 1000);
}

/** The rate of several transfers of `bytes` each, one after another, that took `ms` each: all their bytes over all their time. */
export function mbPerSecondOver(bytes: number, ms: readonly number[]): number {
  if (ms.length === 0) throw new RangeError('no transfers');
  return mbPerSecond(bytes * ms.length, ms.reduce((sum, each) => sum + each, 0));
}
