/**
 * Run by test/unit/heap-compaction.test.ts in a process of its own (a small heap, and V8 flags
 * that are process-wide): runs compactHeap (without flushing bytecode when the argument is
 * `keep-bytecode`) once garbage is unreachable and a function with a
 * large body has run once, and prints as JSON whether the garbage was collected, the heap's
 * bytecode before and after, whether the function still computes the same once its bytecode is
 * dropped, where `gc` is visible afterwards, and whether compactHeap made a tick (process.nextTick)
 * before its collection started (compactHeap is synchronous, so that tick is pending throughout).
 */
import { createHook } from 'node:async_hooks';
import { constants, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import v8 from 'node:v8';
import { runInNewContext, runInThisContext } from 'node:vm';
import { compactHeap } from '../../server/heap-compaction.js';

/** A function run once, like start-up code (10,000 statements). */
const body = Array.from({ length: 10_000 }, (_, i) => `x = (x * ${i + 3} + ${i}) % 1000003;`).join('\n');
const startUpOnly = runInThisContext(`(function (x) {\n${body}\nreturn x;\n})`) as (x: number) => number;
const result = startUpOnly(1);

let garbage: unknown[] | undefined = Array.from({ length: 100_000 }, (_, i) => ({ i }));
const ref = new WeakRef(garbage);
garbage = undefined;
// A WeakRef keeps its target alive until the end of the turn that created or read it.
await turn();
const bytecodeBefore = v8.getHeapCodeStatistics().bytecode_and_metadata_size;
// When compactHeap made ticks, and when full collections started (its own is the first).
let compacting = false;
const tickTimes: number[] = [];
const ticks = createHook({
  init(_id, type) {
    if (compacting && type === 'TickObject') tickTimes.push(performance.now());
  },
}).enable();
const collectionTimes: number[] = [];
/** A GC entry's details (Node sets them; @types/node's PerformanceEntry does not declare them). */
type GcEntry = PerformanceEntry & { detail?: { kind?: number } };
const isFull = (e: GcEntry): boolean => e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
const gcObserver = new PerformanceObserver((list) => collectionTimes.push(...list.getEntries().filter(isFull).map((e) => e.startTime)));
gcObserver.observe({ type: 'gc' });
compacting = true;
compactHeap({ flushBytecode: process.argv[2] !== 'keep-bytecode' });
compacting = false;
ticks.disable();
// GC entries are delivered after the collection, a few turns later.
for (let i = 0; i < 100 && collectionTimes.length === 0; i++) await turn();
gcObserver.disconnect();
const collectionStart = Math.min(...collectionTimes);
const bytecodeAfter = v8.getHeapCodeStatistics().bytecode_and_metadata_size;
process.stdout.write(
  `${JSON.stringify({
    collected: ref.deref() === undefined,
    bytecodeBefore,
    bytecodeAfter,
    sameResult: startUpOnly(1) === result,
    globalGc: typeof (globalThis as { gc?: unknown }).gc,
    newContextGc: runInNewContext('typeof gc') as unknown,
    tickBeforeCollection: collectionTimes.length > 0 && tickTimes.some((time) => time <= collectionStart),
  })}\n`,
);
