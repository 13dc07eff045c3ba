/**
 * Reading a stream whole into memory under a bound: the one reader behind the server's request
 * bodies (invoices, OCI manifests) and its small parcels read from a store, and behind the
 * client's small parcels and error replies. Each caller says what a stream holding more than its
 * bound means (a 413, a look-up instead, a size mismatch, a message cut short).
 */
import type { Readable } from 'node:stream';

/** What readAtMost read. */
export interface BoundedRead {
  /**
   * The stream's bytes, all of them; when it held more than the bound, its first `limit` bytes
   * (then joined only when asked for: most callers refuse such a stream without them).
   */
  readonly bytes: Buffer;
  /** Whether the stream held more than the bound (it was then destroyed with the rest unread). */
  readonly over: boolean;
}

/**
 * Reads `stream` to its end into one Buffer (the chunk itself, without a copy, when it arrives in
 * one) while it gives at most `limit` bytes. The chunk that takes it past `limit` ends the read:
 * the stream is destroyed (nothing more is read from it) and its first `limit` bytes are returned
 * with `over` set. An error of the stream is thrown as it is.
 */
export async function readAtMost(stream: Readable, limit: number): Promise<BoundedRead> {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (size + chunk.length > limit) {
      chunks.push(chunk.subarray(0, limit - size));
      size = limit;
      over = true;
      // Leaving the loop destroys the stream (the iterator's return).
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  const joined = (): Buffer => {
    const [only] = chunks;
    return chunks.length === 1 && only !== undefined ? only : Buffer.concat(chunks, size);
  };
  return over ? { over, get bytes() { return joined(); } } : { over, bytes: joined() };
}
