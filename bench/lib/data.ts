/**
 * Benchmark payloads generated on the fly: `size` bytes as fresh 1 MiB chunks of a random block
 * stamped with a seed and the chunk number (distinct bytes per seed without keeping them all in
 * memory), and their sha256.
 */
import { createHash, randomBytes } from 'node:crypto';

export const CHUNK = 1 << 20;
export const MiB = 1 << 20;

const block = randomBytes(CHUNK);

/** Yields `size` bytes for `seed` as chunks of up to 1 MiB; each chunk is a new Buffer. */
export function* payloadChunks(size: number, seed: number): Generator<Buffer> {
  for (let offset = 0, n = 0; offset < size; offset += CHUNK, n++) {
    const length = Math.min(CHUNK, size - offset);
    const chunk = Buffer.allocUnsafe(length);
    block.copy(chunk, 0, 0, length);
    if (length >= 8) {
      chunk.writeUInt32LE(seed >>> 0, 0);
      chunk.writeUInt32LE(n, 4);
    }
    yield chunk;
  }
}

/** Yields `data` as views of up to `size` bytes (1 MiB by default), in order. */
export function* slices(data: Buffer, size: number = CHUNK): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

/** The whole payload in one Buffer (only for sizes that fit comfortably in memory). */
export function payload(size: number, seed: number): Buffer {
  return Buffer.concat([...payloadChunks(size, seed)], size);
}

/** sha256 hex of the payload for `size` and `seed`, computed chunk by chunk. */
export function payloadSha256(size: number, seed: number): string {
  const hash = createHash('sha256');
  for (const chunk of payloadChunks(size, seed)) hash.update(chunk);
  return hash.digest('hex');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
