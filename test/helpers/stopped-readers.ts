/**
 * Clients that stop reading a download, for tests of what a server holds for them: raw
 * connections that send one GET and never read, the size a file must have for each of them to
 * leave its download holding buffers, the budget those tests give their downloads and the check
 * of what the downloads hold, and a poll that waits for a figure to settle.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { Test } from 'tap';
import { MIN_READ_CHUNK, ReadBufferBudget } from '../../server/storage/file-read-stream.js';

/** The cap of stoppedReaderBudget: what bounds the stopped downloads, 8 MiB. */
const STOPPED_READER_CAP = 8 << 20;

/** A read buffer budget whose share would let a dozen downloads read 1 MiB at a time, so that only its cap bounds them. */
export function stoppedReaderBudget(): ReadBufferBudget {
  return new ReadBufferBudget(64 << 20, STOPPED_READER_CAP);
}

/**
 * Waits until `clients` downloads are open in `budget` (from stoppedReaderBudget) and what they
 * hold has settled, and checks that it is counted (more than nothing: the test exercises the
 * bound) and within the cap plus two smallest reads each.
 */
export async function checkStoppedDownloadsHeld(t: Test, budget: ReadBufferBudget, clients: number): Promise<void> {
  for (let waited = 0; budget.open < clients && waited < 30_000; waited += 25) await new Promise((resolve) => setTimeout(resolve, 25));
  t.equal(budget.open, clients, 'every stopped client has its download open');
  const held = await settled(() => budget.held, 500, 30_000);
  t.ok(held > 0, `the stopped downloads hold buffers counted by the budget (${held} bytes): the test exercises the bound`);
  t.ok(held <= STOPPED_READER_CAP + clients * 2 * MIN_READ_CHUNK, `within the cap plus two smallest reads each (${held} bytes; 1 MiB reads would hold ~${clients * 2} MiB)`);
}

/** A field of a TCP buffer sysctl (tcp_rmem, tcp_wmem: minimum, default, maximum), in bytes; 0 where /proc does not say. */
function tcpBuffer(name: 'tcp_rmem' | 'tcp_wmem', field: 1 | 2): number {
  try {
    return Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[field] ?? 0) || 0;
  } catch {
    return 0;
  }
}

/**
 * Bytes a download must have so that a client which stops reading it leaves the server holding
 * buffers: more than the kernel's socket buffers take on loopback (the sender's may grow to
 * tcp_wmem's maximum, while the receiver's stays near tcp_rmem's default, as it grows only as
 * its reader reads), at least 48 MiB.
 */
export function stoppedReaderBytes(): number {
  return Math.max(48 << 20, 2 * (tcpBuffer('tcp_rmem', 1) + tcpBuffer('tcp_wmem', 2)) + (16 << 20));
}

/**
 * Opens `count` connections to 127.0.0.1:`port`, each sending `GET path` and never reading
 * (each download fills its socket's buffers and then waits on them); they are destroyed at the
 * test's teardown, or earlier by the caller.
 */
export function stopReading(t: Test, port: number, path: string, count: number): Socket[] {
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
  });
  for (let i = 0; i < count; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
    socket.pause();
    sockets.push(socket);
  }
  return sockets;
}

/** Resolves once `value()` has not changed for `quietMs` (polled), or after `timeoutMs`; resolves with the last value. */
export async function settled(value: () => number, quietMs: number, timeoutMs: number): Promise<number> {
  let last = value();
  let since = Date.now();
  for (const start = Date.now(); Date.now() - start < timeoutMs; ) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
  }
  return last;
}
