/**
 * V8's optimizing compiler (Turbofan) in the server process. ./bin/launch.cts turns it off before
 * any module loads: a start runs some functions often enough to get them optimized (node:path's
 * normalizeString, for one, once per module the loader resolves, longer the longer the
 * installation's path), and a single optimizing compilation keeps ~4.5 MiB of the compiler's code
 * and memory resident in an idle server for its whole life. The baseline tiers still run. Once
 * the server listens, and at the start of a one-shot command, enableOptimizingCompiler turns it
 * back on, so that code hot under load is optimized as usual.
 */
import v8 from 'node:v8';

/** Lets V8 optimize hot functions again (a no-op when the launcher did not turn it off). */
export function enableOptimizingCompiler(): void {
  v8.setFlagsFromString('--turbofan');
}
