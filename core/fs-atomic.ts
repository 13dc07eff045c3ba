/**
 * Atomic file writes shared by every layer: write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory. Readers see the old file or the new one,
 * never a partial one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A temp file name beside `target` (same filesystem, so a rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** fsyncs a directory so that a rename inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` (bytes, or a stream whose error aborts the write) to a new temp file beside
 * `target` (same filesystem) with `mode`, fsynced, and returns its path; on failure the temp file is removed. Callers publish it (rename, link).
 */
export async function writeTempFile(
  target: string,
  data: string | Uint8Array | AsyncIterable<Uint8Array>,
  mode: number,
): Promise<string> {
  await mkdir(dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  const handle = await open(temp, 'wx', mode);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await handle.writeFile(data);
    else for await (const chunk of data) await handle.write(chunk);
    await handle.chmod(mode);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  return temp;
}

/** Writes `data` to `target` atomically with the given mode (default 0600). */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const temp = await writeTempFile(target, data, mode);
  try {
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(target));
}
