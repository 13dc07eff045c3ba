/**
 * Times one seam's operations into ServerMetrics (duration histogram, error counter by code),
 * with the histogram's series looked up once per operation, not per call. Shared by
 * the parcel store and invoice index decorators.
 */
import { performance } from 'node:perf_hooks';
import type { HistogramSeries } from './plain-metrics.js';
import { failureCode, type Seam, type ServerMetrics } from './server-metrics.js';

export class OperationTimer<Operation extends string> {
  readonly #metrics: ServerMetrics;
  readonly #seam: Seam;
  readonly #durations = new Map<Operation, HistogramSeries>();

  constructor(metrics: ServerMetrics, seam: Seam) {
    this.#metrics = metrics;
    this.#seam = seam;
  }

  /**
   * Awaits `pending` (the operation, started at `start`, a performance.now() reading) and
   * records how long it took and, when it fails, its error code; resolves or rejects as it does.
   */
  async observe<T>(operation: Operation, start: number, pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } catch (err) {
      this.#metrics.storageErrors.inc({ seam: this.#seam, operation, code: failureCode(err) });
      throw err;
    } finally {
      this.#metrics.storageDuration.observe(this.#duration(operation), (performance.now() - start) / 1000);
    }
  }

  #duration(operation: Operation): HistogramSeries {
    let child = this.#durations.get(operation);
    if (child === undefined) {
      child = this.#metrics.storageDuration.series(this.#seam, operation);
      this.#durations.set(operation, child);
    }
    return child;
  }
}
