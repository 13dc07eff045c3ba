/**
 * The connection cap (server/http/connection-limit.ts): with the cap's connections held open by
 * clients that send nothing more (as slow uploads would), a new connection is closed at once
 * instead of waiting; the drop is logged; once one of the held connections goes, requests are
 * served again. Without a cap given, the app sets none: the server's default is resolved with its
 * config (server/config/server-config.ts).
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ServerMetrics } from '../../server/metrics/server-metrics.js';
import { recordingLogger } from '../helpers/log-records.js';
import { listenForRawClients, makeTestApp } from '../helpers/test-app.js';

/** Connects and sends the start of a request head, then nothing: the connection stays open. */
async function holdConnection(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  return socket;
}

/** What a fresh connection gets for a whole request: the reply's first bytes, or '' when closed without one. */
async function tryRequest(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    if (received.includes('\r\n\r\n')) socket.end();
  });
  socket.on('error', () => undefined);
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await once(socket, 'close');
  return received;
}

t.test('beyond the cap a new connection is closed at once and logged; a freed slot serves again', async (t) => {
  const { logger, records } = recordingLogger('warn');
  const metrics = new ServerMetrics({ version: 'test', processMetrics: false });
  const ta = await makeTestApp(t, { maxConnections: 3, metrics, logger });
  const port = await listenForRawClients(t, ta);
  const held = [await holdConnection(port), await holdConnection(port), await holdConnection(port)];
  t.teardown(() => held.forEach((socket) => socket.destroy()));

  const started = Date.now();
  t.equal(await tryRequest(port), '', 'a fourth connection is closed without a reply');
  t.ok(Date.now() - started < 5000, 'at once, not after a timeout');
  t.match(records, [{ level: 40, maxConnections: 3, dropped: 1, msg: /connection limit reached/ }], 'the drop is logged at warn');
  t.equal(await tryRequest(port), '', 'another one too');
  t.equal(records.length, 1, 'drops within the log interval are counted, not each logged');
  t.match(await metrics.registry.metrics(), /^bindle_http_connections_dropped_total 2$/m, 'each drop is counted in the metrics');

  const first = held.shift();
  first?.destroy();
  if (first !== undefined) await once(first, 'close');
  // The server counts the closed connection out when it sees the close.
  const connections = (): Promise<number> =>
    new Promise((resolve, reject) => ta.app.server.getConnections((err, n) => (err === null ? resolve(n) : reject(err))));
  for (const deadline = Date.now() + 10_000; (await connections()) >= 3 && Date.now() < deadline; ) await sleep(10);
  t.match(await tryRequest(port), /^HTTP\/1\.1 200 /, 'with a slot free, a request is served');
});

t.test('without a cap given, the app sets none: the server\'s default is in its config', async (t) => {
  const ta = await makeTestApp(t);
  t.equal(ta.app.server.maxConnections, undefined);
});
