/**
 * A ParcelStore decorator that records every operation's duration and failures, and the
 * uploads in flight, into ServerMetrics. It changes no behaviour: each call goes to the wrapped
 * store unchanged (so the ParcelStore contract holds as the wrapped store keeps it). Wrapped
 * where implementations are chosen (server/server-runtime.ts), never inside a backend.
 */
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { ByteRange, ParcelStat, ParcelStore, PutResult, RemoveOutcome, StoredParcel } from '../storage/parcel-store.js';
import { OperationTimer } from './operation-timer.js';
import type { ServerMetrics } from './server-metrics.js';

type Operation = 'has' | 'stat' | 'missing' | 'stored_sizes' | 'open_read' | 'put' | 'remove';

export class InstrumentedParcelStore implements ParcelStore {
  readonly #inner: ParcelStore;
  readonly #metrics: ServerMetrics;
  readonly #timer: OperationTimer<Operation>;

  constructor(inner: ParcelStore, metrics: ServerMetrics) {
    this.#inner = inner;
    this.#metrics = metrics;
    this.#timer = new OperationTimer(metrics, 'parcel_store');
  }

  has(sha256: string): Promise<boolean> {
    return this.#timer.observe('has', performance.now(), this.#inner.has(sha256));
  }

  stat(sha256: string): Promise<ParcelStat | undefined> {
    return this.#timer.observe('stat', performance.now(), this.#inner.stat(sha256));
  }

  missing(digests: readonly string[]): Promise<Set<string>> {
    return this.#timer.observe('missing', performance.now(), this.#inner.missing(digests));
  }

  storedSizes(digests: readonly string[]): Promise<Map<string, number>> {
    return this.#timer.observe('stored_sizes', performance.now(), this.#inner.storedSizes(digests));
  }

  /** Timed until the stream is open, not until it has been read. */
  openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    return this.#timer.observe('open_read', performance.now(), this.#inner.openRead(sha256, range));
  }

  async put(sha256: string, expectedSize: number, data: Readable): Promise<PutResult> {
    this.#metrics.uploadsInFlight.inc();
    try {
      return await this.#timer.observe('put', performance.now(), this.#inner.put(sha256, expectedSize, data));
    } finally {
      this.#metrics.uploadsInFlight.dec();
    }
  }

  list(): AsyncIterable<string> {
    return this.#inner.list();
  }

  entries(): AsyncIterable<StoredParcel> {
    return this.#inner.entries();
  }

  remove(sha256: string, confirm: () => Promise<boolean>): Promise<RemoveOutcome> {
    return this.#timer.observe('remove', performance.now(), this.#inner.remove(sha256, confirm));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
