/**
 * Where the server's log lines go: a file descriptor (stdout), written asynchronously by
 * sonic-boom as pino's default destination is, but made safe for a destination that fails or
 * stalls. pino's default turns a failed write (a full disk, ENOSPC; a closed pipe, EPIPE, aside)
 * into an uncaught exception, and its exit hook then writes what is left synchronously, retrying
 * until it is written: on a disk that stays full the process neither served nor exited, and
 * SIGTERM could not stop it; behind a reader that stopped reading, the same hook held every exit.
 * Here:
 * - a failed write is counted and left for the next line to retry (sonic-boom keeps it); the
 *   server goes on serving;
 * - lines waiting to be written are bounded (MAX_PENDING_BYTES): past that, new lines are dropped
 *   and counted instead of growing memory while a reader stalls or the disk stays full;
 * - there is no exit hook: lines are written together at most LINE_BATCH_MS after the first of
 *   them (a write is started then, or as soon as the one under way ends), so at exit only what
 *   waits that long or behind a write still under way is left, and `drained()` lets a closing
 *   server wait for that, for a bounded time.
 * Writing lines in batches, not each as it comes, matters when they come a few at a time (an
 * audit line per upload): sonic-boom writes through the thread pool, and a write per line cost
 * a round trip each (docs/performance.md, "The audit log at --log-level warn").
 * The counts are exported as `bindle_log_failures_total` (server/metrics/server-metrics.ts).
 */
import type { DestinationStream } from 'pino';
import sonicBoom from 'sonic-boom';
import type { CountedLog } from './metrics/server-metrics.js';

/** Bytes of log lines that may wait to be written; past this, new lines are dropped. */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** How long a line may wait for others to be written with (milliseconds). */
export const LINE_BATCH_MS = 5;

/** A log destination; its counts of writes that failed (each retried with the next line) and lines dropped at the bound are exported as metrics. */
export interface LogDestination extends CountedLog {
  /** What pino writes its lines to. */
  readonly lines: DestinationStream;
  /**
   * Resolves once every line given so far has been written, or a write has failed, or after
   * `timeoutMs` (a reader that stopped reading), whichever comes first.
   */
  drained(timeoutMs: number): Promise<void>;
  /**
   * Stops writing and closes the descriptor (asynchronously, unless it is stdout or stderr):
   * what still waits is dropped (for tests; a server's destination lives as long as the process).
   */
  destroy(): void;
}

/** Opens the destination on `fd` (default stdout); lines are written together `batchMs` after the first of them. */
export function openLogDestination(fd = 1, maxPendingBytes = MAX_PENDING_BYTES, batchMs = LINE_BATCH_MS): LogDestination {
  let failedWrites = 0;
  let droppedLines = 0;
  // Whether a line may still be unwritten: set with each line, cleared when sonic-boom has
  // written all it was given ('drain') or a write failed ('error').
  let pending = false;
  const stream = new sonicBoom.SonicBoom({ fd, sync: false, maxLength: maxPendingBytes });
  stream.on('drain', () => {
    pending = false;
  });
  stream.on('error', () => {
    pending = false;
    failedWrites++;
  });
  // A batch of lines is written, or dropped at the bound, together: each line counts.
  stream.on('drop', (data: string) => {
    droppedLines += linesIn(data);
  });
  // The lines to be written `batchMs` after the first of them (held to the same bound).
  let batch = '';
  let flushing: NodeJS.Timeout | undefined;
  let destroyed = false;
  const flush = (): void => {
    flushing = undefined;
    const lines = batch;
    batch = '';
    if (!destroyed) stream.write(lines);
  };
  return {
    lines: {
      write(line: string): void {
        if (batch.length + line.length > maxPendingBytes) {
          droppedLines++;
          return;
        }
        pending = true;
        batch += line;
        flushing ??= setTimeout(flush, batchMs);
      },
    },
    logFailures: () => ({ failedWrites, droppedLines }),
    drained: (timeoutMs) =>
      new Promise<void>((resolve) => {
        if (!pending) {
          resolve();
          return;
        }
        const done = (): void => {
          clearTimeout(timer);
          stream.removeListener('drain', done);
          stream.removeListener('error', done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        stream.on('drain', done);
        stream.on('error', done);
      }),
    destroy: () => {
      destroyed = true;
      if (flushing !== undefined) clearTimeout(flushing);
      batch = '';
      stream.destroy();
    },
  };
}

/** How many lines `data` holds: its newlines, at least one. */
function linesIn(data: string): number {
  let count = 0;
  for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) count++;
  return Math.max(count, 1);
}
