/**
 * Run by test/unit/young-generation.test.ts in a process of its own (node started with a large
 * `--max-semi-space-size`, so growth has room): bounds the young generation at its size at start,
 * runs a load whose survivors grow it, lifts the bound, runs the load again, and prints the
 * semi-space sizes in bytes as JSON: { start, bounded, unbounded }.
 */
import { setImmediate as turn } from 'node:timers/promises';
import { boundYoungGeneration, semiSpaceBytes } from '../../server/young-generation.js';

/** Allocates over many event-loop turns, keeping the last ~30 MB alive, so scavenges see many survivors. */
async function churn(): Promise<void> {
  const keep: Array<Array<{ i: number; s: string }>> = [];
  for (let round = 0; round < 300; round++) {
    keep.push(Array.from({ length: 10_000 }, (_, i) => ({ i, s: `item ${round} ${i}` })));
    if (keep.length > 40) keep.shift();
    await turn();
  }
}

const start = semiSpaceBytes();
const stop = boundYoungGeneration(start);
await churn();
const bounded = semiSpaceBytes();
stop();
await churn();
process.stdout.write(`${JSON.stringify({ start, bounded, unbounded: semiSpaceBytes() })}\n`);
