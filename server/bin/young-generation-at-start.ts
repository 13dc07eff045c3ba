/**
 * Imported first by the entry point (./bindle-server.ts): keeps V8's young generation at its
 * initial size while the process starts. Start-up allocates tens of megabytes that mostly die
 * young, and V8 doubles its semi-spaces on that (to 4 MiB each here), which then stay committed
 * and resident: ~2.5 MiB of a fresh server's idle RSS. Once the server listens,
 * boundYoungGeneration (../young-generation.ts) sets the growth factor again, letting the young
 * generation grow up to its cap as serving needs; the one-shot commands call
 * restoreYoungGenerationGrowth, so that their work is not done with the smallest young generation.
 */
import v8 from 'node:v8';

/** V8's default factor by which a semi-space grows (as in ../young-generation.ts). */
const DEFAULT_GROWTH_FACTOR = 2;

v8.setFlagsFromString('--semi-space-growth-factor=1');

/** Lets the young generation grow as V8 does by default (for work other than serving). */
export function restoreYoungGenerationGrowth(): void {
  v8.setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
}
