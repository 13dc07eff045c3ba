/**
 * Children the tests start (servers, registries, daemons, CLIs) are stopped at teardown; but when
 * the test process itself is ended (tap's per-file timeout sends it SIGTERM, or a signal from the
 * user), teardowns do not run and the children would outlive it. `reapOnExit` SIGKILLs every
 * child still running (and every process group registered with `reapGroupOnExit`) when the test
 * process exits for any reason (signal-exit, the library tap itself uses, so its own exit
 * handling still runs).
 */
import type { ChildProcess } from 'node:child_process';
import { onExit } from 'signal-exit';

const live = new Set<ChildProcess>();
const groups = new Set<number>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  onExit(() => {
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const pgid of groups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // the group has already exited
      }
    }
  });
}

/** Tracks `child` until it exits; SIGKILLs it if the test process ends first. Returns `child`. */
export function reapOnExit<C extends ChildProcess>(child: C): C {
  install();
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/**
 * Tracks the process group `pgid` (a child spawned `detached`, whose own children may outlive
 * it); SIGKILLs the whole group if the test process ends before the returned release is called.
 */
export function reapGroupOnExit(pgid: number): () => void {
  install();
  groups.add(pgid);
  return () => groups.delete(pgid);
}
