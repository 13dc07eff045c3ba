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
 * - there is no exit hook: lines are written as they come (a write is started whenever none is
 *   under way), so at exit only what waits behind a write still under way is left, and
 *   `drained()` lets a closing server wait for that, for a bounded time.
 * The counts are exported as `bindle_log_failures_total` (server/metrics/server-metrics.ts).
 */
import type { DestinationStream } from 'pino';
import sonicBoom from 'sonic-boom';
import type { CountedLog } from './metrics/server-metrics.js';

/** Bytes of log lines that may wait to be written; past this, new lines are dropped. */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** A log destination; its counts of writes that failed (each retried with the next line) and lines dropped at the bound are exported as metrics. */
export interface LogDestination extends CountedLog {
  /** What pino writes its lines to. */
  readonly lines: DestinationStream;
  /**
   * Resolves once every line given so far has been written, or a write has failed, or after
   * `timeoutMs` (a reader that stopped reading), whichever comes first.
   */
  drained(timeoutMs: number): Promise<void>;
  /** Stops writing: what still waits is dropped (for tests; a server's destination lives as long as the process). */
  destroy(): void;
}

/** Opens the destination on `fd` (default stdout). */
export function openLogDestination(fd = 1, maxPendingBytes = MAX_PENDING_BYTES): LogDestination {
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
  stream.on('drop', () => {
    droppedLines++;
  });
  return {
    lines: {
      write(line: string): void {
        pending = true;
        stream.write(line);
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
    destroy: () => stream.destroy(),
  };
}
