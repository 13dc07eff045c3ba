/**
 * Run by test/unit/start-up-compilers.test.ts in a process of its own (node started with
 * `--allow-natives-syntax --no-concurrent-recompilation`, so a function's optimization state can
 * be read and Turbofan compiles on the main thread): pauses the compilers as the launcher does,
 * runs a hot function, resumes them, runs it again, and prints what it saw as JSON.
 */
import { runInThisContext } from 'node:vm';
import compilers from '../../server/start-up-compilers.cjs';

/** V8's optimization status bit: optimized by Turbofan. */
const TURBOFANNED = 1 << 6;
const status = runInThisContext('(f) => %GetOptimizationStatus(f)') as (f: unknown) => number;

function hot(n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += i % 7;
  return s;
}

function warm(): boolean {
  for (let i = 0; i < 5000; i++) hot(1000);
  return (status(hot) & TURBOFANNED) !== 0;
}

const paused = compilers.pauseCompilers([], '');
const optimizedWhilePaused = warm();
const resumed = compilers.resumeCompilers();
const resumedAgain = compilers.resumeCompilers();
const optimizedAfter = warm();
// What node's command line sets is left alone.
const withNoOpt = compilers.pauseCompilers(['--no-opt'], '');
compilers.resumeCompilers();
const withJitless = compilers.pauseCompilers([], '--max-old-space-size=100 --jitless');
compilers.resumeCompilers();
const withSparkplug = compilers.pauseCompilers(['--sparkplug'], '');
compilers.resumeCompilers();
process.stdout.write(`${JSON.stringify({ paused, optimizedWhilePaused, resumed, resumedAgain, optimizedAfter, withNoOpt, withJitless, withSparkplug })}\n`);
