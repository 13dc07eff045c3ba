/**
 * Node's process warnings (deprecations, and notices from dependencies such as the AWS SDK's on
 * the Node version it will need) as lines of the server's log, at warn, instead of the free text
 * Node prints on stderr by default: several lines each, which a collector of the server's JSON
 * log lines cannot parse. Node's own switches still apply: under `--no-deprecation` a
 * deprecation is never emitted, and under `--no-warnings` (or `NODE_NO_WARNINGS=1`) Node adds no
 * printer, so warnings stay silent and are not logged either.
 */
import type { FastifyBaseLogger } from 'fastify';

/**
 * Sends every process warning to `log` (warn) in place of Node's default printer, until the
 * returned function is called; that puts back the listeners there were before. With no listener
 * there (warnings silenced), it changes nothing.
 */
export function logProcessWarnings(log: FastifyBaseLogger): () => void {
  const previous = process.listeners('warning');
  // Node prints warnings through a listener of its own, which it leaves out when told to be silent.
  if (previous.length === 0) return () => undefined;
  process.removeAllListeners('warning');
  const onWarning = (warning: Error & { code?: string }): void => {
    log.warn({ warning: { name: warning.name, code: warning.code, message: warning.message } }, `process warning: ${warning.name}`);
  };
  process.on('warning', onWarning);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    process.off('warning', onWarning);
    for (const listener of previous) process.on('warning', listener);
  };
}
