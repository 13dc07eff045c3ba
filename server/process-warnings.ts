/**
 * Node's process warnings (deprecations, and notices from dependencies such as the AWS SDK's on
 * the Node version it will need) as lines of the server's log, at warn, instead of the free text
 * Node prints on stderr by default: several lines each, which a collector of the server's JSON
 * log lines cannot parse. Node's own flags still apply (`--no-warnings`, `--no-deprecation`):
 * they stop a warning before it is emitted.
 */
import type { FastifyBaseLogger } from 'fastify';

/**
 * Sends every process warning to `log` (warn) in place of Node's default printer, until the
 * returned function is called; that puts back the listeners there were before.
 */
export function logProcessWarnings(log: FastifyBaseLogger): () => void {
  const previous = process.listeners('warning');
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
