/**
 * An InvoiceIndex decorator that records every operation's duration and failures into
 * ServerMetrics. It changes no behaviour: each call goes to the wrapped index unchanged (so the
 * InvoiceIndex contract holds as the wrapped index keeps it). Wrapped where implementations are
 * chosen (server/server-runtime.ts), never inside a backend.
 */
import { performance } from 'node:perf_hooks';
import type { InvoiceIndex, InvoiceQuery, InvoiceQueryResult, StoredInvoice } from '../storage/invoice-index.js';
import { OperationTimer } from './operation-timer.js';
import type { ServerMetrics } from './server-metrics.js';

type Operation = 'insert' | 'get' | 'yank' | 'query' | 'invoices_with_parcel' | 'count';

export class InstrumentedInvoiceIndex implements InvoiceIndex {
  readonly #inner: InvoiceIndex;
  readonly #timer: OperationTimer<Operation>;

  constructor(inner: InvoiceIndex, metrics: ServerMetrics) {
    this.#inner = inner;
    this.#timer = new OperationTimer(metrics, 'invoice_index');
  }

  insert(entry: StoredInvoice): Promise<void> {
    return this.#timer.observe('insert', performance.now(), this.#inner.insert(entry));
  }

  get(name: string, version: string): Promise<StoredInvoice | undefined> {
    return this.#timer.observe('get', performance.now(), this.#inner.get(name, version));
  }

  yank(entry: StoredInvoice): Promise<boolean> {
    return this.#timer.observe('yank', performance.now(), this.#inner.yank(entry));
  }

  query(q: InvoiceQuery): Promise<InvoiceQueryResult> {
    return this.#timer.observe('query', performance.now(), this.#inner.query(q));
  }

  invoicesWithParcel(sha256: string): Promise<Array<{ name: string; version: string; yanked: boolean }>> {
    return this.#timer.observe('invoices_with_parcel', performance.now(), this.#inner.invoicesWithParcel(sha256));
  }

  count(): Promise<number> {
    return this.#timer.observe('count', performance.now(), this.#inner.count());
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
