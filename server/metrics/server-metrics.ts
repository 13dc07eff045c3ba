/**
 * The server's Prometheus metrics: one prom-client Registry per server (never the library's
 * global one, so several servers in one process keep apart) holding the metrics the server
 * exports, plus Node's process metrics; the ones recorded on every request are plain series
 * (./plain-metrics.ts), rendered after the registry. The HTTP hooks (http-metrics.ts) and the
 * decorators around the seams (instrumented-*.ts) record into them; `/metrics` renders it all.
 *
 * Labels are bounded sets only: route patterns (never bindle names or digests), methods,
 * statuses, operations and error codes (the closed set of schema/error-code.schema.json).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { isBindleError } from '../../core/errors/bindle-error.js';
import { PlainCounter, PlainHistogram } from './plain-metrics.js';

/** Latency buckets (seconds) shared by HTTP requests and storage operations: 1 ms to 60 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** How often a cache was asked and had the answer (hits) or not (misses), since it was made. */
export interface CacheLookups {
  readonly hits: number;
  readonly misses: number;
}

/** A cache that counts its look-ups; ServerMetrics reads the counts at each scrape. */
export interface CountedCache {
  cacheLookups(): CacheLookups;
}

/** A log destination that counts what it could not write; ServerMetrics reads the counts at each scrape. */
export interface CountedLog {
  logFailures(): { failedWrites: number; droppedLines: number };
}

/** The seams whose operations are timed. */
export type Seam = 'parcel_store' | 'invoice_index';

export interface ServerMetricsOptions {
  /** The server version, exported as `bindle_build_info{version}`. */
  readonly version: string;
  /** Collect Node's process metrics (CPU, memory, event loop lag, GC, handles); default true. */
  readonly processMetrics?: boolean;
}

/** The error code a failure is counted under: a BindleError's code, else `internal`. */
export function failureCode(err: unknown): string {
  return isBindleError(err) ? err.code : 'internal';
}

export class ServerMetrics {
  readonly registry = new Registry();
  /** Requests answered, by method, route pattern and status. */
  readonly httpRequests: PlainCounter;
  /** Time from the request's arrival to its last response byte, by method, route pattern and status. */
  readonly httpDuration: PlainHistogram;
  /** Bytes read from / written to the connection for requests, headers included, by route pattern. */
  readonly httpReceivedBytes: PlainCounter;
  readonly httpSentBytes: PlainCounter;
  /** Parcel uploads (ParcelStore.put) under way. */
  readonly uploadsInFlight: Gauge;
  /** Connections closed as they arrived because the connection cap was reached (server/http/connection-limit.ts). */
  readonly connectionsDropped: Counter;
  /** Duration of parcel store and invoice index operations, by seam and operation. */
  readonly storageDuration: PlainHistogram;
  /** Failed parcel store and invoice index operations, by seam, operation and error code. */
  readonly storageErrors: Counter<'seam' | 'operation' | 'code'>;
  /** Invoices refused by signature verification, by reason (the error code). */
  readonly verificationFailures: Counter<'reason'>;
  /** Refused credentials (stage authenticate) and refused actions (stage authorize), by reason. */
  readonly authFailures: Counter<'stage' | 'reason'>;
  readonly #caches = new Map<string, CountedCache>();
  #log: CountedLog | undefined;

  constructor(options: ServerMetricsOptions) {
    const registers = [this.registry];
    const build = new Gauge({ name: 'bindle_build_info', help: 'The running bindle-server version (always 1)', labelNames: ['version'], registers });
    build.set({ version: options.version }, 1);
    this.httpRequests = new PlainCounter(
      'bindle_http_requests_total', 'HTTP requests answered, by method, route pattern and status', ['method', 'route', 'status'],
    );
    this.httpDuration = new PlainHistogram(
      'bindle_http_request_duration_seconds', 'HTTP request duration until the last response byte, by method, route pattern and status',
      ['method', 'route', 'status'], LATENCY_BUCKETS,
    );
    this.httpReceivedBytes = new PlainCounter(
      'bindle_http_received_bytes_total', 'Bytes received for HTTP requests (headers and bodies), by route pattern', ['route'],
    );
    this.httpSentBytes = new PlainCounter('bindle_http_sent_bytes_total', 'Bytes sent in HTTP responses (headers and bodies), by route pattern', ['route']);
    this.uploadsInFlight = new Gauge({ name: 'bindle_parcel_uploads_in_flight', help: 'Parcel uploads being received and stored now', registers });
    this.connectionsDropped = new Counter({
      name: 'bindle_http_connections_dropped_total', help: 'Connections closed as they arrived because --max-connections connections were open', registers,
    });
    this.storageDuration = new PlainHistogram(
      'bindle_storage_operation_duration_seconds', 'Parcel store and invoice index operation duration, by seam and operation',
      ['seam', 'operation'], LATENCY_BUCKETS,
    );
    this.storageErrors = new Counter({
      name: 'bindle_storage_operation_errors_total', help: 'Failed parcel store and invoice index operations, by seam, operation and error code',
      labelNames: ['seam', 'operation', 'code'], registers,
    });
    this.verificationFailures = new Counter({
      name: 'bindle_verification_failures_total', help: 'Invoices refused by signature verification, by reason (error code)',
      labelNames: ['reason'], registers,
    });
    this.authFailures = new Counter({
      name: 'bindle_auth_failures_total', help: 'Refused credentials (stage="authenticate") and refused actions (stage="authorize"), by reason (error code)',
      labelNames: ['stage', 'reason'], registers,
    });
    const caches = this.#caches;
    new Counter({
      name: 'bindle_cache_lookups_total', help: 'Cache look-ups by cache and result (hit or miss): the hit rate is hits / all',
      labelNames: ['cache', 'result'], registers,
      collect() {
        this.reset();
        for (const [cache, source] of caches) {
          const { hits, misses } = source.cacheLookups();
          this.inc({ cache, result: 'hit' }, hits);
          this.inc({ cache, result: 'miss' }, misses);
        }
      },
    });
    const log = (): CountedLog | undefined => this.#log;
    new Counter({
      name: 'bindle_log_failures_total',
      help: 'Log writes that failed (each is retried with the next line: failed_write) and log lines dropped while too many waited to be written (dropped_line)',
      labelNames: ['kind'], registers,
      collect() {
        this.reset();
        const failures = log()?.logFailures();
        if (failures === undefined) return;
        this.inc({ kind: 'failed_write' }, failures.failedWrites);
        this.inc({ kind: 'dropped_line' }, failures.droppedLines);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Exports `source`'s counts as `bindle_log_failures_total{kind}`. */
  watchLog(source: CountedLog): void {
    this.#log = source;
  }

  /** Exports `source`'s look-up counts as `bindle_cache_lookups_total{cache=name}`. */
  watchCache(name: string, source: CountedCache): void {
    this.#caches.set(name, source);
  }

  /** The Content-Type of `render()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text exposition format. */
  async render(): Promise<string> {
    const text = await this.registry.metrics();
    const plain = [this.httpRequests, this.httpDuration, this.httpReceivedBytes, this.httpSentBytes, this.storageDuration].map((m) => m.render());
    return [text.endsWith('\n') ? text : `${text}\n`, ...plain].join('');
  }
}
