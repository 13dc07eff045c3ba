/**
 * Everything a benchmark run or a test process starts, so that it can be stopped: child processes
 * (killed by their own handle), process groups and temp directories (removed). Teardowns and the
 * bench stop what they started; this is for when they cannot run: when the process exits for any
 * reason (normal exit, an uncaught error, a signal such as tap's per-file timeout SIGTERM), every
 * tracked child and process group still running is SIGKILLed and every temp directory removed.
 * The exit hook is signal-exit's, the library tap itself uses, so tap's own exit handling still
 * runs; it is installed by the first thing tracked.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { onExit } from 'signal-exit';

const children = new Set<ChildProcess>();
const groups = new Set<number>();
const directories = new Set<string>();
let hooked = false;
let announceSignals = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  onExit((_code, signal) => {
    if (signal !== null && announceSignals) {
      process.stderr.write(`\nbench: ${signal}: stopping every process it started and removing its temp directories\n`);
    }
    cleanUpNow();
  });
}

/** Tracks `child` until it exits; it is SIGKILLed if this process ends first. Returns `child`. */
export function trackChild<C extends ChildProcess>(child: C): C {
  hookExit();
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/**
 * Tracks the process group `pgid` (a child spawned `detached`, whose own children may outlive
 * it); the whole group is SIGKILLed if this process ends before the returned release is called.
 */
export function trackProcessGroup(pgid: number): () => void {
  hookExit();
  groups.add(pgid);
  return () => groups.delete(pgid);
}

/** Spawns a child process and tracks it until it exits. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return trackChild(spawn(command, args, options));
}

/** True while the child has neither exited nor been killed by a signal. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Sends `signal` to the child and waits for its exit; after `graceMs` it is SIGKILLed.
 * Resolves with its exit code (null when a signal ended it).
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> {
  if (!isRunning(child)) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Creates a temp directory under `parent`, removed at the end of the run (or earlier by removeTempDir). */
export function makeTempDir(parent: string, prefix: string): string {
  hookExit();
  const dir = mkdtempSync(join(parent, prefix));
  directories.add(dir);
  return dir;
}

/** Removes a directory made by makeTempDir now. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  directories.delete(dir);
}

/** Kills every tracked child and process group and removes every temp directory, synchronously. */
export function cleanUpNow(): void {
  for (const child of children) {
    if (isRunning(child)) child.kill('SIGKILL');
  }
  children.clear();
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // the group has already exited
    }
  }
  groups.clear();
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
  directories.clear();
}

/** For the bench run: installs the exit hook now, and says on stderr when a signal ends the run. */
export function installCleanup(): void {
  announceSignals = true;
  hookExit();
}
