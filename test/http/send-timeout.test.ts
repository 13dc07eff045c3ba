/**
 * The send timeout (server/http/request-timeouts.ts): a client that stops taking a reply has its
 * connection closed once none of the reply has moved for the timeout, so that it cannot hold the
 * server's buffers, files and storage connections; one that keeps taking it, however slowly
 * and with pauses shorter than the timeout, gets all of it. On the backend pair the run selects
 * (postgres+s3 in `npm run test:http-backends`).
 */
import { connect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { signedInvoice, sha256 } from '../helpers/bindles.js';
import { recordingLogger } from '../helpers/log-records.js';
import { listenForRawClients, makeTestApp, type TestApp, type TestAppOptions } from '../helpers/test-app.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';

/** Bigger than what the kernel buffers on loopback (send and receive side) can take unread. */
const PARCEL_BYTES = 32 * 2 ** 20;

/** A listening app holding one bindle with a PARCEL_BYTES parcel; resolves with its port and the parcel's path. */
async function serving(t: Test, opts: TestAppOptions): Promise<{ ta: TestApp; port: number; path: string; data: Buffer }> {
  const ta = await makeTestApp(t, opts);
  const data = Buffer.alloc(PARCEL_BYTES);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i);
  const invoice = signedInvoice('example.com/big', '1.0.0', [{ name: 'big.bin', data, mediaType: 'application/octet-stream' }]);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) })).statusCode, 202);
  const path = `/v1/_i/example.com/big/1.0.0@${sha256(data)}`;
  t.equal((await ta.app.inject({ method: 'POST', url: path, payload: data })).statusCode, 200, 'the parcel is stored');
  return { ta, port: await listenForRawClients(t, ta), path, data };
}

/** Sends a GET for `path` on a new connection that reads nothing until resumed. */
function stalledGet(port: number, path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.pause();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Reads `socket` to its end (or `limitMs`); resolves with what came and whether it ended. */
function readToEnd(socket: Socket, limitMs: number, each?: (received: number) => void): Promise<{ bytes: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (ended: boolean): void => {
      clearTimeout(limit);
      socket.destroy();
      resolve({ bytes: Buffer.concat(chunks), ended });
    };
    const limit = setTimeout(() => finish(false), limitMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      each?.(received);
    });
    socket.once('end', () => finish(true));
    socket.once('close', () => finish(true));
    socket.resume();
  });
}

/** The body of a whole HTTP/1.1 response. */
function bodyOf(bytes: Buffer): Buffer {
  const end = bytes.indexOf('\r\n\r\n');
  return end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4);
}

t.test('a client that stops reading is disconnected after the send timeout; others are served', async (t) => {
  const { logger, records } = recordingLogger();
  const { ta, port, path } = await serving(t, { sendTimeoutMs: 400, logger });
  const stalled = await Promise.all([stalledGet(port, path), stalledGet(port, path)]);
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const meanwhile = await ta.app.inject({ url: '/healthz' });
  t.equal(meanwhile.statusCode, 200, 'the server answers others meanwhile');
  for (const socket of stalled) {
    // What the kernels had buffered still arrives, then the end: not the whole parcel.
    const { bytes, ended } = await readToEnd(socket, 20_000);
    t.ok(ended, 'the server closed the connection');
    t.ok(bytes.toString('latin1', 0, 20).startsWith('HTTP/1.1 200'), 'after the reply had begun');
    t.ok(bodyOf(bytes).length < PARCEL_BYTES, `only part of the parcel came (${bodyOf(bytes).length} of ${PARCEL_BYTES} bytes)`);
  }
  const stalls = records.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('reply stalled'));
  t.equal(stalls.length, 2, 'each stall is logged');
  t.ok(stalls.every((r) => r.level === 30 && r.code === 'request_timeout'), 'at info, as a timeout');
  t.ok(stalls.every((r) => r.method === 'GET' && r.url === path), 'naming the request');
});

t.test('a slow reader that keeps taking bytes gets the whole reply', async (t) => {
  const { port, path, data } = await serving(t, { sendTimeoutMs: 1000 });
  const socket = await stalledGet(port, path);
  // Takes 4 MiB at a time, then pauses for 600 ms: over the timeout in all, never in one pause.
  let next = 4 * 2 ** 20;
  const started = Date.now();
  const { bytes, ended } = await readToEnd(socket, 60_000, (received) => {
    if (received < next) return;
    next += 4 * 2 ** 20;
    socket.pause();
    setTimeout(() => socket.resume(), 600);
  });
  t.ok(ended, 'the reply ended');
  t.ok(Date.now() - started > 1000, 'it took longer than the timeout');
  const body = bodyOf(bytes);
  t.equal(body.length, data.length, 'all of it');
  t.equal(createHash('sha256').update(body).digest('hex'), sha256(data), 'intact');
});
