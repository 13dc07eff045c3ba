/**
 * Bundles a test's entry the way the server is bundled (`node scripts/bundle-server.mjs ENTRY
 * OUTDIR`), for tests of what bundling does to a module; the entry lands at `<outdir>/<name>.mjs`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/** Runs the server's bundling script on `entry` into `outdir`; resolves with its exit code and signal. */
export async function bundleAsServer(entry: string, outdir: string): Promise<[number | null, NodeJS.Signals | null]> {
  const bundling = spawn(process.execPath, [join(REPO_ROOT, 'scripts', 'bundle-server.mjs'), entry, outdir], { stdio: 'inherit' });
  return (await once(bundling, 'exit')) as [number | null, NodeJS.Signals | null];
}
