/**
 * V8's compilers beyond the interpreter (Turbofan, which optimizes, and Sparkplug, the baseline
 * compiler) during the server's start-up. Loading the server runs most of its code once, and what
 * runs hot for a moment (module bodies, setting up Fastify and the metrics) gets compiled by
 * both: their code in node's binary then stays resident for the life of the process, and so does
 * what they compiled, for code that never runs again (measured on a fresh idle server: VmRSS
 * 65.7 MiB, 61.6 with Turbofan off during start-up, 60.1 with Sparkplug off too).
 * So ./bin/launch.cts pauses both before the bundle loads, and the server resumes them once it
 * listens, or before a one-shot command works: requests are served by code that both compile as
 * it gets hot, as before. A CommonJS module, since launch.cts (CommonJS, run before any ES module
 * loads) and the bundle both use it; they load two copies of it, which share their state through
 * a global.
 */
import v8 = require('node:v8');

/** A compiler this module pauses: its V8 flag, and the flags that set it on node's command line. */
interface Compiler {
  readonly flag: string;
  readonly setBy: readonly string[];
}

const COMPILERS: readonly Compiler[] = [
  { flag: 'turbofan', setBy: ['turbofan', 'opt', 'jitless', 'always-turbofan', 'always-opt'] },
  { flag: 'sparkplug', setBy: ['sparkplug', 'jitless', 'always-sparkplug'] },
];

/** Where the compilers paused are recorded, by flag, between the two copies of this module. */
const PAUSED = Symbol.for('bindle.pausedCompilers');

type Holder = { [PAUSED]?: readonly string[] };

/** The V8 flags on node's command line (its arguments and NODE_OPTIONS), without `--`/`--no-`, dashes for underscores. */
function commandLineFlags(execArgv: readonly string[], nodeOptions: string): Set<string> {
  const args = [...execArgv, ...nodeOptions.split(/\s+/)];
  return new Set(args.filter((a) => a.startsWith('--')).map((a) => a.replace(/^--(no-)?/, '').replace(/=.*$/, '').replace(/_/g, '-')));
}

/**
 * Turns off each compiler that node's command line does not set itself (with e.g. `--no-opt`
 * or `--jitless`, which are left as they are). Returns the flags of those it paused.
 */
function pauseCompilers(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): readonly string[] {
  const given = commandLineFlags(execArgv, nodeOptions);
  const paused = COMPILERS.filter((c) => !c.setBy.some((f) => given.has(f))).map((c) => c.flag);
  for (const flag of paused) v8.setFlagsFromString(`--no-${flag}`);
  (globalThis as Holder)[PAUSED] = paused;
  return paused;
}

/**
 * Turns back on every compiler pauseCompilers paused; a no-op when none was (e.g. a server
 * started in-process by a test, or a second call). Returns the flags it turned on.
 */
function resumeCompilers(): readonly string[] {
  const holder = globalThis as Holder;
  const paused = holder[PAUSED] ?? [];
  holder[PAUSED] = [];
  for (const flag of paused) v8.setFlagsFromString(`--${flag}`);
  return paused;
}

export = { pauseCompilers, resumeCompilers };
