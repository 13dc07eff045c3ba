/**
 * S3ParcelStore against a stalled S3 service: a listener on 127.0.0.1 that accepts connections
 * and never answers (a hung service, or a full one: RGW holds a write while its store is full).
 * Every request then fails after the store's idle timeout and the SDK's retries, as
 * `unavailable`, and gives its connection back; none waits for ever. No S3 service needed.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';

import { CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS, S3ParcelStore } from '../../server/storage/s3-parcel-store.js';

/** A TCP listener that reads what it is sent and never answers; counts the connections open at any time. */
async function stalledService(t: Test): Promise<{ endpoint: string; open: () => number; accepted: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { endpoint: `http://127.0.0.1:${address.port}`, open: () => sockets.size, accepted: () => accepted };
}

// The SDK signs every request, so it needs credentials before it connects; the stalled service never checks them.
process.env.AWS_ACCESS_KEY_ID ??= 'stall-test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'stall-test';

t.test('the timeouts are bounded by default', async (t) => {
  t.ok(CONNECT_TIMEOUT_MS > 0 && CONNECT_TIMEOUT_MS <= 10_000, `connect ${CONNECT_TIMEOUT_MS} ms`);
  t.ok(IDLE_TIMEOUT_MS > 0 && IDLE_TIMEOUT_MS <= 60_000, `idle ${IDLE_TIMEOUT_MS} ms`);
});

t.test('a service that never answers: open fails as unavailable within its retries, its connections closed', async (t) => {
  const service = await stalledService(t);
  const started = performance.now();
  await t.rejects(
    S3ParcelStore.open({
      bucket: 'stalled',
      prefix: '',
      endpoint: service.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      timeouts: { connectMs: 1000, idleMs: 300 },
    }),
    { code: 'unavailable' },
  );
  const ms = performance.now() - started;
  t.ok(service.accepted() >= 1, `the requests reached the service (${service.accepted()} connections)`);
  // 3 attempts of 300 ms idle each, with the SDK's backoff between them; far below a minute.
  t.ok(ms < 30_000, `failed after ${Math.round(ms)} ms`);
  // The SDK destroys a request's socket when it times out: nothing stays open towards the service.
  for (let i = 0; i < 50 && service.open() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(service.open(), 0, 'no connection left open');
});
