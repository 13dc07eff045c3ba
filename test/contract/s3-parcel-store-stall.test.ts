/**
 * S3ParcelStore against a stalled S3 service: a listener on 127.0.0.1 that accepts connections
 * and never answers (a hung service, or a full one: RGW holds a write while its store is full).
 * Every request then fails after the store's idle timeout and the SDK's retries, as
 * `unavailable`, and gives its connection back; none waits for ever. No S3 service needed for
 * that. And the real test service behind a proxy that stops passing anything on, once the store
 * is open: a look-up, a read and a small put each fail as `unavailable` at the request deadline
 * (retries included), not after three idle timeouts. An s3:// spec's `requestDeadline` is the
 * deadline of the store it opens.
 */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';

import { parseParcelsSpec } from '../../server/config/backend-specs.js';
import { openParcelStore } from '../../server/storage/backends.js';
import { CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS, REQUEST_DEADLINE_MS, S3ParcelStore } from '../../server/storage/s3-parcel-store.js';
import { sha256 } from '../helpers/bindles.js';
import { s3TestBucket, s3TestClient, s3TestService } from '../helpers/s3-service.js';

/**
 * A TCP server on 127.0.0.1 that hands each connection to `handle`, with `track` to register
 * sockets (the connection is registered already); at teardown every registered socket still open
 * is destroyed and the server closed. Resolves with its http:// endpoint and the open sockets.
 */
async function tcpListener(t: Test, handle: (socket: Socket, track: (socket: Socket) => void) => void): Promise<{ endpoint: string; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = createServer((socket) => {
    track(socket);
    handle(socket, track);
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
  return { endpoint: `http://127.0.0.1:${address.port}`, sockets };
}

/** A TCP listener that reads what it is sent and never answers; counts the connections open at any time. */
async function stalledService(t: Test): Promise<{ endpoint: string; open: () => number; accepted: () => number }> {
  let accepted = 0;
  const { endpoint, sockets } = await tcpListener(t, (socket) => {
    accepted += 1;
    socket.resume();
  });
  return { endpoint, open: () => sockets.size, accepted: () => accepted };
}

/**
 * A TCP proxy on 127.0.0.1 to `target` that passes bytes both ways until `stall()`; from then on
 * it takes what either side sends, on connections open and new, and passes nothing on.
 */
async function stallableProxy(t: Test, target: URL): Promise<{ endpoint: string; stall: () => void }> {
  let stalled = false;
  const { endpoint } = await tcpListener(t, (client, track) => {
    const upstream = connect(Number(target.port), target.hostname);
    track(upstream);
    client.on('data', (bytes) => stalled || upstream.write(bytes));
    upstream.on('data', (bytes) => stalled || client.write(bytes));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return { endpoint, stall: () => (stalled = true) };
}

// The SDK signs every request, so it needs credentials before it connects; the stalled service never checks them.
process.env.AWS_ACCESS_KEY_ID ??= 'stall-test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'stall-test';

t.test('the timeouts are bounded by default', async (t) => {
  t.ok(CONNECT_TIMEOUT_MS > 0 && CONNECT_TIMEOUT_MS <= 10_000, `connect ${CONNECT_TIMEOUT_MS} ms`);
  t.ok(IDLE_TIMEOUT_MS > 0 && IDLE_TIMEOUT_MS <= 60_000, `idle ${IDLE_TIMEOUT_MS} ms`);
  // The Bindle client waits 30 s for a reply (client/lib/bindle-client.ts): the 503 must come first.
  t.ok(REQUEST_DEADLINE_MS > 0 && REQUEST_DEADLINE_MS < 30_000, `request deadline ${REQUEST_DEADLINE_MS} ms`);
});

t.test('a service that stops answering once the store is open: requests fail at the deadline, not after the retries\' idle timeouts', async (t) => {
  const service = s3TestService(t);
  if (service === undefined) return;
  const bucket = await s3TestBucket(t, await s3TestClient(t, service));
  const proxy = await stallableProxy(t, new URL(service.endpoint));
  const deadlineMs = 1000;
  const store = await S3ParcelStore.open({
    bucket,
    prefix: 'stalled/',
    endpoint: proxy.endpoint,
    region: service.region,
    forcePathStyle: true,
    // Three attempts that each waited out the idle timeout would take over 30 s.
    timeouts: { connectMs: 1000, idleMs: 10_000, deadlineMs },
  });
  t.teardown(() => store.close());
  const stored = Buffer.from('stored before the service stalled');
  await store.put(sha256(stored), stored.length, Readable.from([stored]));
  t.ok(await store.has(sha256(stored)), 'the store works through the proxy');
  proxy.stall();
  const other = Buffer.from('put while the service is stalled');
  const requests: [string, () => Promise<unknown>][] = [
    ['a look-up', () => store.has(sha256(stored))],
    ['a read', () => store.openRead(sha256(stored))],
    ['a small put', () => store.put(sha256(other), other.length, Readable.from([other]))],
  ];
  for (const [what, request] of requests) {
    const started = performance.now();
    await t.rejects(request(), { code: 'unavailable', message: new RegExp(`no reply within ${deadlineMs} ms`) }, what);
    const ms = performance.now() - started;
    // A put makes two requests (a look-up, then the PutObject), each within the deadline.
    t.ok(ms < 8_000, `${what} failed after ${Math.round(ms)} ms`);
  }
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

t.test('an s3:// spec\'s requestDeadline is the deadline of the store it opens', async (t) => {
  const service = await stalledService(t);
  const spec = parseParcelsSpec(`s3://stalled?endpoint=${service.endpoint}&forcePathStyle=true&requestDeadline=1s`, '--parcels', '/', {});
  const started = performance.now();
  // With the default deadline (REQUEST_DEADLINE_MS) the open's bucket check would fail after 20 s, naming that.
  await t.rejects(openParcelStore(spec), { code: 'unavailable', message: /no reply within 1000 ms, retries included/ });
  const ms = performance.now() - started;
  t.ok(ms < 10_000, `failed after ${Math.round(ms)} ms`);
});
