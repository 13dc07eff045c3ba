/**
 * File confinement of module processes. Node's WASI does not confine a module to its preopens:
 * it follows symlinks that point out of a preopened directory, and Node's permission model
 * does not apply to WASI's file calls (both verified by test/unit/kubelet-sandbox.test.ts).
 * So each module process runs in a bubblewrap (`bwrap`) sandbox: new mount, PID, network, IPC,
 * UTS and cgroup namespaces, no capabilities, a new session, and a root filesystem holding only
 * the read-only system directories the runtime needs (`/usr` and the `/lib*` links) and the
 * container's data directory, bound read-only at its guest path (`/data`). A `..`, an absolute
 * path or a symlink pointing out of `/data` then finds nothing of the host: the kubelet's keys,
 * caches, state and other pods' files are not in the sandbox at all.
 *
 * Without bubblewrap (`none`), modules run as plain processes and the kubelet logs that their
 * file access is not confined.
 */
import { execFile } from 'node:child_process';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';

/** A host directory and where the module process sees it. */
export interface SandboxMount {
  host: string;
  guest: string;
}

/** The command that starts a runtime process, confined or not. */
export interface SandboxCommand {
  file: string;
  args: string[];
}

/**
 * How module processes are confined. Contract: `command(runtime, runtimeArgs, mounts)` returns
 * a command that runs `runtime` with `runtimeArgs`, with each mount's host directory visible at
 * its guest path and read-only (for `none`, at its host path, which is what `guestPath`
 * returns); inherited file descriptors (stdio, the IPC channel) stay open; when `confined` is
 * true nothing else of the host's files is writable and nothing outside the system directories
 * is readable, and the process dies with the kubelet.
 */
export interface Sandbox {
  readonly kind: 'bwrap' | 'none';
  readonly confined: boolean;
  /** Where the process sees a mount (the path to give WASI as the preopen). */
  guestPath(mount: SandboxMount): string;
  command(runtime: string, runtimeArgs: readonly string[], mounts: readonly SandboxMount[]): SandboxCommand;
}

/** No confinement: the runtime runs as it is. */
export const noSandbox: Sandbox = {
  kind: 'none',
  confined: false,
  guestPath: (mount) => mount.host,
  command: (runtime, runtimeArgs) => ({ file: runtime, args: [...runtimeArgs] }),
};

/** Top-level system directories a runtime may need: bound read-only when real, recreated when links. */
const SYSTEM_DIRS = ['/usr', '/lib', '/lib64', '/lib32', '/libx32', '/bin', '/sbin'];

/** A bubblewrap sandbox (see the module comment). `system` are the bind/symlink arguments for the system directories. */
export class BwrapSandbox implements Sandbox {
  readonly kind = 'bwrap';
  readonly confined = true;
  readonly #bwrap: string;
  readonly #system: readonly string[];

  constructor(bwrap: string, system: readonly string[]) {
    this.#bwrap = bwrap;
    this.#system = system;
  }

  guestPath(mount: SandboxMount): string {
    return mount.guest;
  }

  command(runtime: string, runtimeArgs: readonly string[], mounts: readonly SandboxMount[]): SandboxCommand {
    const args = ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--unsetenv', 'NODE_OPTIONS', ...this.#system];
    if (!SYSTEM_DIRS.some((d) => runtime.startsWith(`${d}/`))) args.push('--ro-bind', runtime, runtime);
    for (const m of mounts) args.push('--ro-bind', m.host, m.guest);
    args.push('--chdir', '/', '--', runtime, ...runtimeArgs);
    return { file: this.#bwrap, args };
  }
}

/** The bind and symlink arguments reproducing the host's system directories. */
async function systemArgs(): Promise<string[]> {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    try {
      const stat = await lstat(dir);
      if (stat.isSymbolicLink()) args.push('--symlink', await readlink(dir), dir);
      else if (stat.isDirectory()) args.push('--ro-bind', dir, dir);
    } catch {
      // Not on this host.
    }
  }
  return args;
}

/** The first `name` on PATH that exists, as a real path. */
async function onPath(name: string, path: string): Promise<string | undefined> {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    try {
      return await realpath(join(dir, name));
    } catch {
      // Not here.
    }
  }
  return undefined;
}

function run(file: string, args: readonly string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(file, [...args], { env: {}, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ ok: err === null, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** The Node.js binary module processes run with (the kubelet's own), as a real path. */
export async function runtimePath(): Promise<string> {
  return realpath(process.execPath);
}

/**
 * A working bubblewrap sandbox when `bwrap` is on `PATH` (or given) and can start the runtime
 * (it needs namespaces: root, or unprivileged user namespaces); otherwise `noSandbox`, after
 * logging why module file access will not be confined.
 */
export async function detectSandbox(log: (message: string) => void, opts: { bwrap?: string; path?: string } = {}): Promise<Sandbox> {
  const bwrap = opts.bwrap ?? (await onPath('bwrap', opts.path ?? process.env.PATH ?? ''));
  if (bwrap === undefined) {
    log('bubblewrap (bwrap) is not installed: module file access is NOT confined to /data (install the bubblewrap package)');
    return noSandbox;
  }
  const sandbox = new BwrapSandbox(bwrap, await systemArgs());
  const runtime = await runtimePath();
  const probe = sandbox.command(runtime, ['-e', 'process.exit(0)'], [{ host: dirname(runtime), guest: '/probe' }]);
  const result = await run(probe.file, probe.args);
  if (!result.ok) {
    log(`bubblewrap (${bwrap}) cannot start a sandbox here: module file access is NOT confined to /data: ${result.output}`);
    return noSandbox;
  }
  return sandbox;
}
