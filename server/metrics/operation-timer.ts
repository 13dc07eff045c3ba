/**
 * Times one seam's operations into ServerMetrics (duration histogram, error counter by code).
 * Shared by the parcel store and invoice index decorators.
 */
import { performance } from 'node:perf_hooks';
import { failureCode, type Seam, type ServerMetrics } from './server-metrics.js';

export class OperationTimer<Operation extends string> {
  readonly #metrics: ServerMetrics;
  readonly #seam: Seam;

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
      const duration = this.#metrics.storageDuration;
      duration.observe(duration.series(this.#seam, operation), (performance.now() - start) / 1000);
    }
  }
}
