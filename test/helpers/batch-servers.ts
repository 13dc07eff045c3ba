/**
 * Servers for the client's batch transfers: a real listening test server whose request lines are
 * recorded, and a forwarding proxy in front of it that behaves as an older server or a proxy
 * would towards batches (refusing them as the reference server does, answering nginx's 413 to a
 * large body, ignoring a batch download's query as the reference server does, or altering or
 * cutting short a batch download's reply).
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';
import type { Test } from 'tap';
import { recordingLogger } from './log-records.js';
import { makeTestApp } from './test-app.js';

/** A test server whose request lines are recorded, and its base URL. */
export async function recordedServer(t: Test): Promise<{ url: string; requests: () => Array<{ method: string; url: string }> }> {
  const { logger, records } = recordingLogger();
  const ta = await makeTestApp(t, { logger });
  await ta.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = ta.app.server.address() as AddressInfo;
  const requests = (): Array<{ method: string; url: string }> =>
    records.filter((r) => r.msg === 'incoming request').map((r) => r.req as { method: string; url: string });
  return { url: `http://127.0.0.1:${port}/v1/`, requests };
}

/**
 * What a proxy does to batches:
 * - `no-batches`: a POST to an invoice's own path (a batch upload) gets 405 with a TOML error
 *   body, as from the reference server;
 * - `body-limit`: any request whose Content-Length is over `bytes` gets nginx's 413 page;
 * - `no-batch-downloads`: a GET's query is dropped on the way, so a batch download gets the
 *   invoice, as from the reference server, which ignores parameters it does not know;
 * - `alter-batch-downloads`: the replies of batch downloads reach the client with their parcels'
 *   bytes altered (see alteringData; single downloads pass untouched);
 * - `cut-batch-downloads`: the replies of batch downloads stop after `bytes` bytes of their body,
 *   the connection closed (as when the server dies mid-reply).
 */
export type Refusal =
  | { kind: 'no-batches' }
  | { kind: 'body-limit'; bytes: number }
  | { kind: 'no-batch-downloads' }
  | { kind: 'alter-batch-downloads' }
  | { kind: 'cut-batch-downloads'; bytes: number };

/** Whether a request line is a batch download: a GET of an invoice's path with `parcels=`. */
function isBatchDownload(method: string | undefined, url: string): boolean {
  return method === 'GET' && url.startsWith('/v1/_i/') && !url.includes('@') && /[?&]parcels=/.test(url);
}

/** Turns every `small` in what passes into `SMALL`: the parcels of the tests say `small`, the multipart framing never does. */
function alteringData(): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, Buffer.from(chunk.toString('latin1').replace(/small/g, 'SMALL'), 'latin1'));
    },
  });
}

/** Passes the first `bytes` bytes, then destroys `res` (its connection closed mid-body). */
function cutting(bytes: number, res: ServerResponse): Transform {
  let passed = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const room = bytes - passed;
      passed += chunk.length;
      if (room > chunk.length) {
        callback(null, chunk);
        return;
      }
      callback(null, chunk.subarray(0, Math.max(0, room)));
      // Once what passed is flushed to the socket.
      setImmediate(() => res.destroy());
    },
  });
}

/** A proxy to `target` that does to batches what `refusal` says and forwards everything else as it is. */
export async function refusingProxy(t: Test, target: string, refusal: Refusal): Promise<{ url: string; refused: () => number }> {
  const upstream = new URL(target);
  let refused = 0;
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    let url = req.url ?? '';
    if (refusal.kind === 'no-batches' && req.method === 'POST' && url.startsWith('/v1/_i/') && !url.includes('@')) {
      refused += 1;
      req.resume();
      res.writeHead(405, { 'content-type': 'application/toml' }).end('error = "Got invalid method"\n');
      return;
    }
    if (refusal.kind === 'body-limit' && Number(req.headers['content-length'] ?? 0) > refusal.bytes) {
      refused += 1;
      req.resume();
      res.writeHead(413, { 'content-type': 'text/html', connection: 'close' })
        .end('<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n');
      return;
    }
    const batchDownload = isBatchDownload(req.method, url);
    if (batchDownload && refusal.kind === 'no-batch-downloads') {
      refused += 1;
      url = url.slice(0, url.indexOf('?'));
    }
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, path: url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (batchDownload && refusal.kind === 'alter-batch-downloads') {
        refused += 1;
        answer.pipe(alteringData()).pipe(res);
      } else if (batchDownload && refusal.kind === 'cut-batch-downloads') {
        refused += 1;
        answer.pipe(cutting(refusal.bytes, res)).pipe(res);
      } else {
        answer.pipe(res);
      }
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    proxy.closeAllConnections();
    proxy.close(() => resolve());
  }));
  const { port } = proxy.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1/`, refused: () => refused };
}
