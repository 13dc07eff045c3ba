/**
 * The cap on open connections. Besides its socket, every connection may hold a file descriptor
 * for the parcel it streams or its upload's temp file, so a flood of connections (slow uploads
 * that keep moving, which no timeout cuts off) could use up the process's descriptors and stall
 * the requests already in: health probes, downloads, the index and its query workers. Beyond the
 * cap Node closes a new connection as soon as it is accepted (`server.maxConnections`), and the
 * drops are logged. The default leaves every connection room for one file within the open-file
 * limit, after a reserve for the rest of the process.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';

import type { FastifyBaseLogger } from 'fastify';

import type { ServerMetrics } from '../metrics/server-metrics.js';

/** Descriptors kept out of the default's reckoning: the index, its workers, logs, keyring watches, backend pools. */
export const DESCRIPTOR_RESERVE = 512;
/** The default never exceeds this: each connection also costs memory. */
export const MAX_DEFAULT_CONNECTIONS = 10_000;
/** Nor goes below this, however low the open-file limit. */
export const MIN_DEFAULT_CONNECTIONS = 64;
/** A drop is logged at most this often (with the count since the last line). */
export const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * The soft open-file limit from the text of `/proc/self/limits` (`Max open files  <soft> <hard> files`);
 * undefined when the text has no such line or says `unlimited`.
 */
export function parseOpenFileLimit(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+)\s/m.exec(limits);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** This process's soft open-file limit (Node raises it to the hard limit at start-up); undefined where /proc is not there. */
export function openFileLimit(): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The default cap for an open-file limit: half of what is left after the reserve (a socket and a
 * file per connection), within [MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS]; the upper bound
 * when the limit is unknown.
 */
export function defaultMaxConnections(limit: number | undefined): number {
  if (limit === undefined) return MAX_DEFAULT_CONNECTIONS;
  const half = Math.floor((limit - DESCRIPTOR_RESERVE) / 2);
  return Math.max(MIN_DEFAULT_CONNECTIONS, Math.min(MAX_DEFAULT_CONNECTIONS, half));
}

/**
 * Caps `server` at `max` open connections; new ones beyond it are closed at once, logged (warn)
 * on `log` and counted in `metrics`.
 */
export function limitConnections(server: Server, max: number, log?: FastifyBaseLogger, metrics?: ServerMetrics): void {
  server.maxConnections = max;
  let dropped = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  server.on('drop', () => {
    metrics?.connectionsDropped.inc();
    dropped += 1;
    const now = Date.now();
    if (now - loggedAt < DROP_LOG_INTERVAL_MS) return;
    loggedAt = now;
    log?.warn({ dropped, maxConnections: max }, 'connection limit reached: new connections are closed as they arrive');
    dropped = 0;
  });
}
