/**
 * A plain node:http server for tests that need a real peer (a fake OIDC provider, a misbehaving
 * Bindle server): listening on 127.0.0.1 at a free port, and always closed at teardown.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';

/** Serves `handler` on 127.0.0.1 (port 0) until the test ends; resolves with the origin, e.g. http://127.0.0.1:43123. */
export async function serveLocally(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
