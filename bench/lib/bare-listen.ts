/**
 * The part every bare comparison server of bench/bin shares: listening on 127.0.0.1 at a free
 * port, announcing it on stdout as one JSON line `{"port":N}` (what spawnBareServer in
 * bench/lib/server.ts waits for), and stopping on SIGTERM/SIGINT.
 */
import http from 'node:http';

/** How long a bare server keeps an idle keep-alive connection open (nginx's default). */
export const KEEP_ALIVE_TIMEOUT_MS = 75_000;

/**
 * Serves `handler` on 127.0.0.1 at a free port, prints `{"port":N}` once listening, and on
 * SIGTERM/SIGINT closes every connection and exits with 0.
 */
export function serveBare(handler: http.RequestListener): http.Server {
  const server = http.createServer(handler);
  // Interleaved rounds leave a connection idle while the other contenders run, often past Node's
  // default 5 s; a request sent as the server closes it fails with "socket hang up". nginx keeps
  // idle connections 75 s, Fastify 72 s: so does every bare server.
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  });
  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}
