/**
 * Run by test/unit/heap-compaction.test.ts in a process of its own (a small heap, and V8 flags
 * that are process-wide): runs compactHeap once garbage is unreachable, and prints as JSON
 * whether the garbage was collected and where `gc` is visible afterwards.
 */
import { setImmediate as turn } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { compactHeap } from '../../server/heap-compaction.js';

let garbage: unknown[] | undefined = Array.from({ length: 100_000 }, (_, i) => ({ i }));
const ref = new WeakRef(garbage);
garbage = undefined;
// A WeakRef keeps its target alive until the end of the turn that created or read it.
await turn();
compactHeap();
process.stdout.write(
  `${JSON.stringify({
    collected: ref.deref() === undefined,
    globalGc: typeof (globalThis as { gc?: unknown }).gc,
    newContextGc: runInNewContext('typeof gc') as unknown,
  })}\n`,
);
