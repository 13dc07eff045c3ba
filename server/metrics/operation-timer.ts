/**
 * Times one seam's operations into ServerMetrics (duration histogram, error counter by code).
 * Shared by the parcel store and invoice index decorators.
 */
import { performance } from 'node:perf_hooks';
import type { HistogramSeries } from './plain-metrics.js';
import { failureCode, type Seam, type ServerMetrics } from './server-metrics.js';

export class OperationTimer<Operation extends string> {
  readonly #metrics: ServerMetrics;
  readonly #seam: Seam;
  /** Each operation's duration series, looked up in the family once (when first recorded into, as the family would create it). */
  readonly #series = new Map<Operation, HistogramSeries>();

  constructor(metrics: ServerMetrics, seam: Seam) {
    this.#metrics = metrics;
    this.#seam = seam;
  }

  /**
   * Awaits `pending` (the operation, started at `start`, a performance.now() reading) and
   * records how long it took and, when it fails, its error code; resolves or rejects as it does.
   * One reaction on `pending` rather than an async function: this runs on every index read (the
   * invoice GET path), where each extra promise and microtask shows.
   */
  observe<T>(operation: Operation, start: number, pending: Promise<T>): Promise<T> {
    return pending.then(
      (value) => {
        this.recordSince(operation, start);
        return value;
      },
      (err: unknown) => {
        this.#metrics.storageErrors.inc({ seam: this.#seam, operation, code: failureCode(err) });
        this.recordSince(operation, start);
        throw err;
      },
    );
  }

  /** Records that `operation`, started at `start` (a performance.now() reading), has just ended: for an operation that answered synchronously. */
  recordSince(operation: Operation, start: number): void {
    const duration = this.#metrics.storageDuration;
    let series = this.#series.get(operation);
    if (series === undefined) {
      series = duration.series(this.#seam, operation);
      this.#series.set(operation, series);
    }
    duration.observe(series, (performance.now() - start) / 1000);
  }
}
