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
   * One reaction on `pending` rather than an async function: this runs on every index read (the
   * invoice GET path), where each extra promise and microtask shows.
   */
  observe<T>(operation: Operation, start: number, pending: Promise<T>): Promise<T> {
    return pending.then(
      (value) => {
        this.#record(operation, start);
        return value;
      },
      (err: unknown) => {
        this.#metrics.storageErrors.inc({ seam: this.#seam, operation, code: failureCode(err) });
        this.#record(operation, start);
        throw err;
      },
    );
  }

  #record(operation: Operation, start: number): void {
    const duration = this.#metrics.storageDuration;
    duration.observe(duration.series(this.#seam, operation), (performance.now() - start) / 1000);
  }
}
