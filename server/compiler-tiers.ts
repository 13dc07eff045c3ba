/**
 * V8's compilers past the interpreter in the server process: Turbofan (optimizing) and Sparkplug
 * (baseline). ./bin/launch.cts turns both off before any module loads: a start runs some
 * functions often enough to get them optimized (node:path's normalizeString, for one, once per
 * module the loader resolves, longer the longer the installation's path), and a single optimizing
 * compilation keeps ~4.5 MiB of the compiler's code and memory resident in an idle server for its
 * whole life; the baseline code compiled for start-up code stays too (~0.5 MiB). The interpreter
 * runs the start. Once the server listens, and at the start of a one-shot command,
 * enableCompilerTiers turns both back on, so that code hot under load is compiled as usual.
 */
import v8 from 'node:v8';

/** Lets V8 compile hot functions again, baseline and optimized (a no-op when the launcher did not turn them off). */
export function enableCompilerTiers(): void {
  v8.setFlagsFromString('--turbofan');
  v8.setFlagsFromString('--sparkplug');
}
