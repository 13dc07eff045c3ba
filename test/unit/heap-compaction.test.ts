/**
 * compactHeap (server/heap-compaction.ts) collects unreachable objects, drops the bytecode of
 * functions that ran before it (start-up code; compiled anew if called again) unless told to
 * keep it, and leaves `gc` exposed
 * nowhere: not on the process's global, nor on contexts created after it; a tick is pending across
 * the collection (it keeps the maps of Node's tick objects, see there). Runs in a child process
 * (test/helpers/heap-compaction-child.ts): the flags it sets are process-wide, and a full
 * compacting collection of tap's own large heap would be slow.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../helpers/heap-compaction-child.ts', import.meta.url));

t.test('a full collection that drops bytecode, with gc exposed nowhere afterwards', (t) => {
  const out = execFileSync(process.execPath, [...process.execArgv, CHILD], { encoding: 'utf8', timeout: 120_000 });
  const seen = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as {
    collected: boolean;
    bytecodeBefore: number;
    bytecodeAfter: number;
    sameResult: boolean;
    globalGc: string;
    newContextGc: string;
    tickBeforeCollection: boolean;
  };
  t.equal(seen.collected, true, 'unreachable objects are collected');
  // Measured: a collection without flushing drops ~0.07 MB here, one with it ~0.5 MB (that
  // function's bytecode and the test loader's).
  t.ok(seen.bytecodeBefore - seen.bytecodeAfter > 250_000, `bytecode is dropped (${seen.bytecodeBefore} -> ${seen.bytecodeAfter} bytes)`);
  t.equal(seen.sameResult, true, 'a function whose bytecode was dropped runs again, compiled anew');
  t.equal(seen.globalGc, 'undefined', 'the global has no gc');
  t.equal(seen.newContextGc, 'undefined', 'nor has a context created afterwards');
  t.equal(seen.tickBeforeCollection, true, 'a tick made before the collection is pending during it');
  t.end();
});

t.test('with flushBytecode false, the collection keeps the bytecode', (t) => {
  const out = execFileSync(process.execPath, [...process.execArgv, CHILD, 'keep-bytecode'], { encoding: 'utf8', timeout: 120_000 });
  const seen = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { collected: boolean; bytecodeBefore: number; bytecodeAfter: number };
  t.equal(seen.collected, true, 'unreachable objects are collected');
  t.ok(seen.bytecodeBefore - seen.bytecodeAfter < 250_000, `bytecode is kept (${seen.bytecodeBefore} -> ${seen.bytecodeAfter} bytes)`);
  t.end();
});
