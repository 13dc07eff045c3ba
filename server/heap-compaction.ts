/**
 * Compacting garbage collections of the whole heap: one once the server has started
 * (./bin/bindle-server.ts), and one whenever the server goes idle after a busy spell with much of
 * its heap committed but unused (compactWhenIdle, below). Start-up leaves the old generation's
 * pages part garbage and part fragmented, and an idle server does no full collection that would
 * compact them, so they stay committed and resident: compacting once gives ~1 MiB back (measured
 * on a fresh idle server). The start-up collection also drops the bytecode of every function not running then (V8 would drop a
 * function's only after it has gone unused over several full collections, which an idle server
 * never runs): most of it is start-up code (configuration, command line, opening the stores)
 * that never runs again, ~0.6 MiB more; what does run again is compiled anew on its next call,
 * as at its first. V8 offers no API for a collection, so `gc` is taken from a throw-away context
 * created while `--expose-gc` is set (the server's own global never gets it), and compaction
 * and flushing are forced for that one collection only.
 *
 * A tick stays pending across that collection. Node builds each tick object (`process.nextTick`,
 * which its streams call several times per request) from a literal with computed keys, so the
 * maps of those objects are held only by tick objects alive at the time. A collection with no
 * tick pending drops them, and from then on the optimized stream code that inlines nextTick
 * defines each tick's four properties in V8's runtime: ~4 % of the server's samples under small
 * GETs (perf: Runtime_DefineKeyedOwnPropertyInLiteral, Map::TransitionToDataProperty and
 * JSObject::MigrateToMap; none with the tick pending, and none without the collection).
 *
 * Under load V8 grows the heap it has committed and keeps it once the load stops: its memory
 * reducer did not give any of it back to a server left idle for 90 s after a burst of uploads and
 * reads (heap 60 MiB committed, ~30 used; RSS 158 MiB). One compacting collection then took the
 * committed heap to ~23 MiB and the RSS ~30 MiB lower, in 120-140 ms. So a server that has been
 * busy and then gets hardly any requests for a while compacts once, if enough of its heap is
 * unused; the bytecode stays (the code that served the last requests will likely serve the next).
 */
import type { EventEmitter } from 'node:events';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/** The pending tick's callback: the tick is there only to be alive during the collection. */
function keepTickMaps(): void {}

/**
 * Runs one full, compacting collection now (synchronously: tens of milliseconds on a fresh
 * server's heap, ~120 ms on one grown under load), which also drops the bytecode of every
 * function not running unless `flushBytecode` is false.
 */
export function compactHeap(opts: { flushBytecode?: boolean } = {}): void {
  const flushBytecode = opts.flushBytecode ?? true;
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
  v8.setFlagsFromString('--compact-on-every-full-gc');
  if (flushBytecode) v8.setFlagsFromString('--stress-flush-code');
  try {
    process.nextTick(keepTickMaps);
    gc();
  } finally {
    if (flushBytecode) v8.setFlagsFromString('--no-stress-flush-code');
    v8.setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/** The interval over which a server's requests are counted to tell busy from idle (see compactWhenIdle). */
export const IDLE_COMPACTION_MS = 30_000;
/**
 * Requests an interval may have and still count as idle: one a second. Health probes and metric
 * scrapes (every 10-15 s) are not load; without this, a server behind them would never be idle.
 */
export const IDLE_COMPACTION_QUIET_REQUESTS = 30;
/** An idle server compacts only when at least this much of its heap is committed but unused. */
export const IDLE_COMPACTION_MIN_UNUSED_BYTES = 16 * 2 ** 20;

/** Bytes of the heap committed but not in use (the young generation's free part included). */
export function unusedHeapBytes(): number {
  const heap = v8.getHeapStatistics();
  return heap.total_heap_size - heap.used_heap_size;
}

export interface IdleCompactionOptions {
  /** Default IDLE_COMPACTION_QUIET_REQUESTS. */
  quietRequests?: number;
  /** Default IDLE_COMPACTION_MIN_UNUSED_BYTES. */
  minUnusedBytes?: number;
  /** Measures the unused heap (default unusedHeapBytes). */
  unusedBytes?: () => number;
  /** Compacts (default compactHeap, keeping bytecode). */
  compact?: () => void;
  /** Told at each end of a busy spell: the unused bytes, whether it compacted and how long that took. */
  onIdle?: (report: IdleReport) => void;
}

/** What an IdleCompaction did when a busy spell ended. */
export interface IdleReport {
  /** Bytes of the heap committed but unused, before any compaction. */
  readonly unusedBytes: number;
  /** Whether that was enough to compact. */
  readonly compacted: boolean;
  /** How long the compaction took (0 without one). */
  readonly ms: number;
}

/**
 * The decision behind compactWhenIdle, one `check` per interval: a check that finds more than
 * `quietRequests` requests since the last one remembers that the server has been busy; the first
 * check after it that finds no more than that compacts, when at least `minUnusedBytes` of the heap
 * is unused, and either way waits for another busy interval before it compacts again.
 */
export class IdleCompaction {
  #requests = 0;
  #busy = false;
  readonly #quietRequests: number;
  readonly #minUnusedBytes: number;
  readonly #unusedBytes: () => number;
  readonly #compact: () => void;
  readonly #onIdle: (report: IdleReport) => void;

  constructor(opts: IdleCompactionOptions = {}) {
    this.#quietRequests = opts.quietRequests ?? IDLE_COMPACTION_QUIET_REQUESTS;
    this.#minUnusedBytes = opts.minUnusedBytes ?? IDLE_COMPACTION_MIN_UNUSED_BYTES;
    this.#unusedBytes = opts.unusedBytes ?? unusedHeapBytes;
    this.#compact = opts.compact ?? (() => compactHeap({ flushBytecode: false }));
    this.#onIdle = opts.onIdle ?? (() => undefined);
  }

  /** Counts a request. */
  request(): void {
    this.#requests += 1;
  }

  /** Ends an interval; true when it compacted. */
  check(): boolean {
    const requests = this.#requests;
    this.#requests = 0;
    if (requests > this.#quietRequests) {
      this.#busy = true;
      return false;
    }
    if (!this.#busy) return false;
    this.#busy = false;
    const unusedBytes = this.#unusedBytes();
    if (unusedBytes < this.#minUnusedBytes) {
      this.#onIdle({ unusedBytes, compacted: false, ms: 0 });
      return false;
    }
    const started = performance.now();
    this.#compact();
    this.#onIdle({ unusedBytes, compacted: true, ms: performance.now() - started });
    return true;
  }
}

/** compactWhenIdle's options: IdleCompaction's and the interval. */
export interface IdleTimerOptions extends IdleCompactionOptions {
  /** The interval over which requests are counted; default IDLE_COMPACTION_MS. */
  idleMs?: number;
}

/**
 * Compacts the heap once `server`, after an interval of `idleMs` with more than `quietRequests`
 * requests, has an interval with no more than that (so one to two intervals after its load
 * stopped), when at least `minUnusedBytes` of the heap is unused (IdleCompaction). Returns the
 * function that stops it.
 */
export function compactWhenIdle(server: Pick<EventEmitter, 'on' | 'off'>, opts: IdleTimerOptions = {}): () => void {
  const { idleMs = IDLE_COMPACTION_MS, ...compaction } = opts;
  const idle = new IdleCompaction(compaction);
  const onRequest = (): void => idle.request();
  server.on('request', onRequest);
  const timer = setInterval(() => idle.check(), idleMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    server.off('request', onRequest);
  };
}
