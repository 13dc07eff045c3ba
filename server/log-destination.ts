/**
 * Where the server's log lines go: a file descriptor (stdout), written asynchronously by
 * sonic-boom as pino's default destination is, but made safe for a destination that fails or
 * stalls. pino's default turns a failed write (a full disk, ENOSPC; a closed pipe, EPIPE, aside)
 * into an uncaught exception, and its exit hook then retries the unwritten lines synchronously
 * until they are written: on a disk that stays full the process neither served nor exited, and
 * SIGTERM could not stop it. Here:
 * - a failed write is counted and left for the next line to retry (sonic-boom keeps it); the
 *   server goes on serving;
 * - lines waiting to be written are bounded (MAX_PENDING_BYTES): past that, new lines are dropped
 *   and counted instead of growing memory while a reader stalls or the disk stays full;
 * - at exit, what is waiting is written synchronously only if the destination's last write
 *   succeeded, and a full non-blocking pipe (EAGAIN) then ends the attempt instead of waiting for
 *   the reader. Still held, as with pino's default: an exit whose last write meets a disk that
 *   fills during it (sonic-boom's synchronous flush retries every error but EAGAIN), or a
 *   blocking pipe whose reader has stopped.
 * The counts are exported as `bindle_log_failures_total` (server/metrics/server-metrics.ts).
 */
import { register as onExit, unregister as offExit } from 'on-exit-leak-free';
import sonicBoom, { type SonicBoom } from 'sonic-boom';
import type { CountedLog } from './metrics/server-metrics.js';

/** Bytes of log lines that may wait to be written; past this, new lines are dropped. */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** A log destination; its counts of writes that failed (each retried with the next line) and lines dropped at the bound are exported as metrics. */
export interface LogDestination extends CountedLog {
  /** The stream to give pino. */
  readonly stream: SonicBoom;
}

/** What a destination has seen, kept beside its stream (the exit hook holds streams weakly). */
interface DestinationState {
  exiting: boolean;
  /** Whether the last write finished without an error. */
  healthy: boolean;
  failedWrites: number;
  droppedLines: number;
}

const states = new WeakMap<SonicBoom, DestinationState>();

/** The exit hook: writes what is waiting, synchronously, if the destination's last write succeeded. */
function flushAtExit(stream: SonicBoom): void {
  const state = states.get(stream);
  if (state === undefined) return;
  state.exiting = true;
  if (!state.healthy) return;
  try {
    stream.flushSync();
  } catch {
    // What could not be written now is lost: the process is ending.
  }
}

/** Opens the destination on `fd` (default stdout), with its exit hook (dropped once the stream closes or is collected). */
export function openLogDestination(fd = 1, maxPendingBytes = MAX_PENDING_BYTES): LogDestination {
  const state: DestinationState = { exiting: false, healthy: true, failedWrites: 0, droppedLines: 0 };
  const stream = new sonicBoom.SonicBoom({
    fd,
    sync: false,
    maxLength: maxPendingBytes,
    // A full pipe is retried while serving (its reader may catch up), not at exit.
    retryEAGAIN: () => !state.exiting,
  });
  states.set(stream, state);
  stream.on('write', () => {
    state.healthy = true;
  });
  stream.on('error', () => {
    state.healthy = false;
    state.failedWrites++;
  });
  stream.on('drop', () => {
    state.droppedLines++;
  });
  onExit(stream, flushAtExit);
  stream.on('close', () => offExit(stream));
  return { stream, logFailures: () => ({ failedWrites: state.failedWrites, droppedLines: state.droppedLines }) };
}
