/**
 * The request timeouts' defaults, the body idle timeout and the send timeout. The headers timeout is Node's own
 * (answered with a body by ./client-errors.ts). The body idle timeout aborts a request whose
 * body stops arriving: when no byte of it has come for `idleMs` while the
 * server was ready for more, the request is answered 408 `request_timeout` (if no reply was sent
 * yet), its request stream destroyed with that error and its connection closed, so whatever
 * the route was writing is abandoned and cleaned up by its own error path (the parcel store
 * removes its temp file). That route's handler then fails after the 408 went out; the failure
 * is the stall's consequence, already logged at info, so it is dropped instead of reaching
 * Fastify, which logs a handler failing after its reply as a server error. A slow upload that keeps moving
 * is never cut off, however long it takes, and time the server itself spends not reading (a full
 * stream buffer) does not count against the client. A request without a body (neither
 * Content-Length nor Transfer-Encoding, RFC 9112 §6.3: most GETs and HEADs) needs no timer.
 * The send timeout is the same for the other direction (nginx's `send_timeout`): a connection
 * whose reply has bytes waiting to go out, none of which the client has taken for `idleMs`, is
 * closed, so that clients which stop reading cannot hold the server's buffers, file descriptors
 * and storage connections for ever. A slow download that keeps moving is never cut off.
 */
import { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BindleError } from '../../core/errors/bindle-error.js';
import { responseInFlight } from './client-errors.js';
import { sendDocument } from './reply.js';

/** Default time a request body may send nothing before the request is aborted. */
export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 30_000;
/** Default time a reply may wait for its client to take any of its bytes. */
export const DEFAULT_SEND_TIMEOUT_MS = 60_000;
/** Default time the request line and headers may take to arrive. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;

/** How often progress is checked, as a fraction of the idle time (bounded to 50 ms..1 s). */
function checkInterval(idleMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(idleMs / 4)));
}

/** Whether a request's head announces a body (RFC 9112 §6.3: only these two headers frame one). */
export function hasBody(headers: { 'content-length'?: string | undefined; 'transfer-encoding'?: string | undefined }): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Requests this module aborted after answering them 408. */
const stalled = new WeakSet<FastifyRequest>();

/** Methods whose routes read a request body (a GET's or HEAD's route never does). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

export function registerBodyIdleTimeout(app: FastifyInstance, idleMs: number): void {
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.some((method) => BODY_METHODS.has(method))) return;
    const handler = route.handler;
    route.handler = function (this: FastifyInstance, request, reply) {
      const result: unknown = handler.call(this, request, reply);
      if (!(result instanceof Promise)) return result;
      return result.catch((err: unknown) => {
        if (stalled.has(request)) return undefined;
        throw err;
      });
    };
  });
  app.addHook('onRequest', (request, reply, done) => {
    done();
    const raw = request.raw;
    const socket = raw.socket;
    // Injected requests (app.inject) have no connection to time out.
    if (raw.complete || !hasBody(raw.headers) || !(socket instanceof Socket)) return;
    let lastRead = socket.bytesRead;
    let lastProgress = Date.now();
    const timer = setInterval(() => {
      if (raw.complete || socket.destroyed) {
        clearInterval(timer);
        return;
      }
      const read = socket.bytesRead;
      if (read !== lastRead || raw.readableLength > 0) {
        lastRead = read;
        lastProgress = Date.now();
        return;
      }
      if (Date.now() - lastProgress < idleMs) return;
      clearInterval(timer);
      const error = new BindleError('request_timeout', `no request body data arrived for ${idleMs} ms: the request was aborted`);
      request.log.info({ code: error.code, received: read }, 'request body stalled');
      stalled.add(request);
      // The request stream is destroyed with the error, so that whoever reads it (an upload
      // into a temp file) fails and cleans up: once the reply is sent, Node detaches the request
      // from its socket, and closing the socket alone would leave that reader waiting forever.
      const abort = (): void => {
        raw.destroy(error);
        socket.destroy();
      };
      if (reply.sent) {
        abort();
        return;
      }
      reply.raw.once('close', abort);
      void sendDocument(request, reply.header('connection', 'close'), error.status, { error: error.message, code: error.code });
    }, checkInterval(idleMs));
    // Not cleared when the reply is sent: Node then reads (and drops) the rest of the body, which
    // may stall just the same. The check above clears it once the body is complete.
    timer.unref();
  });
}

/** A watched connection's write side when last seen moving (or idle). */
interface SendProgress {
  written: number;
  queued: number;
  since: number;
}

/**
 * Closes every connection of `app` whose reply has bytes queued that have not moved for
 * `idleMs`: neither handed to the kernel (`writableLength`) nor added to (`bytesWritten`). One
 * timer sweeps all connections; a request costs nothing. Idle keep-alive connections have nothing
 * queued and are left to Node's keep-alive timeout; uploads to the body idle timeout.
 */
export function registerSendTimeout(app: FastifyInstance, idleMs: number): void {
  const watched = new Map<Socket, SendProgress>();
  const watch = (socket: Socket): void => {
    watched.set(socket, { written: socket.bytesWritten, queued: 0, since: Date.now() });
    socket.once('close', () => watched.delete(socket));
  };
  // Over TLS, the reply is written to the TLS socket, which 'secureConnection' gives; the TCP
  // socket under it ('connection') then never has anything queued of its own.
  app.server.on('connection', watch);
  app.server.on('secureConnection', watch);
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [socket, progress] of watched) {
      const queued = socket.writableLength;
      const written = socket.bytesWritten;
      if (queued === 0 || queued !== progress.queued || written !== progress.written) {
        progress.queued = queued;
        progress.written = written;
        progress.since = now;
        continue;
      }
      if (now - progress.since < idleMs) continue;
      watched.delete(socket);
      const request = responseInFlight(socket)?.req;
      app.log.info(
        { code: 'request_timeout', method: request?.method, url: request?.url, remoteAddress: socket.remoteAddress, queued },
        `reply stalled: the client took none of it for ${idleMs} ms; connection closed`,
      );
      socket.destroy();
    }
  }, checkInterval(idleMs));
  timer.unref();
  app.addHook('onClose', (_instance, done) => {
    clearInterval(timer);
    done();
  });
}
