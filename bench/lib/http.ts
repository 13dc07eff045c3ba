/**
 * Plain node:http calls for the benchmarks: one request with its whole reply, a streamed upload
 * with backpressure, a download that only counts bytes, health polling and free-port picking.
 * Times are wall-clock milliseconds (performance.now).
 */
import { once } from 'node:events';
import http from 'node:http';
import { createServer } from 'node:net';

/** A reply read to its end. */
export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  agent?: http.Agent;
}

/** One request; resolves with the status, headers and body. */
export function httpRequest(url: string, opts: RequestOptions = {}): Promise<HttpReply> {
  return new Promise<HttpReply>((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Like httpRequest, failing unless the status is `expected`. */
export async function expectStatus(expected: number | number[], url: string, opts: RequestOptions = {}): Promise<HttpReply> {
  const reply = await httpRequest(url, opts);
  const allowed = Array.isArray(expected) ? expected : [expected];
  if (!allowed.includes(reply.status)) {
    throw new Error(`${opts.method ?? 'GET'} ${url}: expected ${allowed.join(' or ')}, got ${reply.status}: ${reply.body.toString('utf8').slice(0, 500)}`);
  }
  return reply;
}

/** The outcome of a timed transfer. */
export interface Transfer {
  status: number;
  bytes: number;
  /** From the start of the request to the end of the reply. */
  ms: number;
  /** The reply body (uploads only; downloads are discarded). */
  body: string;
}

/**
 * POSTs `size` bytes taken from `chunks` (which must yield exactly that many), waiting for
 * 'drain' whenever the socket buffer is full, and times the request to the end of the reply.
 */
export function uploadChunks(url: string, size: number, chunks: Iterable<Buffer>, agent?: http.Agent): Promise<Transfer> {
  return new Promise<Transfer>((resolve, reject) => {
    const started = performance.now();
    let sent = 0;
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': size } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, bytes: sent, ms: performance.now() - started, body: Buffer.concat(parts).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    const write = async (): Promise<void> => {
      for (const chunk of chunks) {
        sent += chunk.length;
        if (!req.write(chunk)) await once(req, 'drain');
      }
      req.end();
    };
    write().catch((err: unknown) => {
      req.destroy();
      reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
}

/** GETs `url`, counting and discarding the body; times the request to the end of the reply. */
export function downloadDiscard(url: string, agent?: http.Agent): Promise<Transfer> {
  return new Promise<Transfer>((resolve, reject) => {
    const started = performance.now();
    const req = http.get(url, { agent }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ms: performance.now() - started, body: '' }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('could not read the address of a probe socket');
  return address.port;
}

/** True when GET `<origin><path>` (default `/healthz`) answers 200 now (a refused connection is false). */
export async function isHealthy(origin: string, path = '/healthz'): Promise<boolean> {
  try {
    const reply = await httpRequest(`${origin}${path}`, { agent: new http.Agent({ keepAlive: false }) });
    return reply.status === 200;
  } catch {
    return false;
  }
}

/**
 * Polls `<origin><path>` (default `/healthz`) every `intervalMs` until it answers 200; rejects
 * after `timeoutMs` or as soon as `failed()` returns a reason (e.g. the process exited).
 */
export async function waitUntilHealthy(
  origin: string,
  opts: { timeoutMs: number; intervalMs: number; path?: string; failed?: () => string | undefined },
): Promise<void> {
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    if (await isHealthy(origin, opts.path)) return;
    const reason = opts.failed?.();
    if (reason !== undefined) throw new Error(reason);
    if (performance.now() > deadline) throw new Error(`${origin}${opts.path ?? '/healthz'} did not answer 200 within ${opts.timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs));
  }
}
