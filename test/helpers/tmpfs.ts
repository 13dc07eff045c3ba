/**
 * A real tmpfs mounted on a new temp directory, for tests of what the server does when its
 * file system fills up or goes away. Mounting needs root; callers skip with the error otherwise.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendPair } from './test-backends.js';

/** Mounts a tmpfs of `size` (mount's syntax, e.g. `2m`) on a new directory: its path, or why it could not. */
export function mountTmpfs(size: string): string | Error {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * A tmpfs of `size` for a test of the sqlite+file backends (the only pair whose storage is on
 * the local disk): its directory, or, as tap's `skip` option, why the test cannot run here (on
 * another pair, `otherPairReason`; without permission to mount, the mount's error).
 */
export function localTmpfs(size: string, otherPairReason: string): { dir: string; skip: false } | { dir: undefined; skip: string } {
  if (backendPair() !== 'sqlite+file') return { dir: undefined, skip: `the ${backendPair()} backends ${otherPairReason}` };
  const mounted = mountTmpfs(size);
  if (mounted instanceof Error) return { dir: undefined, skip: `cannot mount a tmpfs here (needs root): ${mounted.message.split('\n')[0] ?? ''}` };
  return { dir: mounted, skip: false };
}

/** Detaches the tmpfs on `dir` (lazily: open files keep it until closed), if still mounted. */
export function unmountTmpfs(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  } catch {
    // Already unmounted.
  }
}

/** Unmounts and removes the directory `mountTmpfs` made. */
export function removeTmpfs(dir: string): void {
  unmountTmpfs(dir);
  rmSync(dir, { recursive: true, force: true });
}
