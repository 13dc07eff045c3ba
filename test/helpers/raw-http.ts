/**
 * Raw TCP exchanges with a server, for what an HTTP client library would not send: requests
 * without Host, bogus Expect headers, malformed lines, bodies that trickle or stall.
 */
import { connect } from 'node:net';

/** A step of a raw exchange: bytes to send, or a pause (ms) before the next step. */
export type RawStep = string | Buffer | { pause: number };

/** What came back: the bytes, and whether the server closed the connection (not the safety limit). */
export interface RawResult {
  text: string;
  closedByServer: boolean;
}

/**
 * Connects to 127.0.0.1:`port`, performs `steps`, and resolves with everything the server sent
 * once it closes the connection (or after `limitMs`, as a safety net, with what came so far).
 */
export function rawExchange(port: number, steps: readonly RawStep[], limitMs = 60_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(limit);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('utf8'), closedByServer });
    };
    const limit = setTimeout(() => finish(false), limitMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    const run = async (): Promise<void> => {
      for (const step of steps) {
        if (done) return;
        if (typeof step === 'object' && !Buffer.isBuffer(step)) await new Promise((r) => setTimeout(r, step.pause));
        else socket.write(step);
      }
    };
    socket.once('connect', () => void run());
  });
}

/** The status code and body of the first response in `text`. */
export function firstResponse(text: string): { status: number; headers: string; body: string } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const split = text.indexOf('\r\n\r\n');
  const headers = split < 0 ? text : text.slice(0, split);
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
  return { status, headers, body: split < 0 ? '' : text.slice(split + 4, split + 4 + length) };
}
