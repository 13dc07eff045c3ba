/**
 * Runs the real `bindle-server` (the entry the package runs, server/bin/launch.cts, which loads
 * the built bundle) as a child process on 127.0.0.1 with port 0, waits until it logs its address,
 * and always stops it at teardown.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { SERVER_BIN } from '../../bench/lib/server.js';
import { trackChild } from '../../bench/lib/cleanup.js';

// The built entry points are named once, beside the benchmarks' launcher.
export { CLI_BIN, KUBELET_BIN, SERVER_BIN } from '../../bench/lib/server.js';

export interface ServerProcess {
  /** e.g. http://127.0.0.1:43123 */
  origin: string;
  /** e.g. http://127.0.0.1:43123/v1/ (what BINDLE_URL takes) */
  url: string;
  directory: string;
  child: ChildProcess;
  /** Everything the server wrote to stdout/stderr so far. */
  output(): string;
  /** Sends SIGTERM and waits for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface ServerProcessOptions {
  /** Data directory (default: a fresh temp dir, removed at teardown). */
  directory?: string;
  /** Extra flags, e.g. ['--keyring', path]. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * Start the server through `env -u NODE_OPTIONS`: tap's process tracking adds an `--import`
   * preload to every child's NODE_OPTIONS, and loading it starts libuv's thread pool before the
   * entry can size it.
   */
  withoutPreload?: boolean;
  /** The launcher to start (default SERVER_BIN, the repository's dist/server/bin/launch.cjs). */
  bin?: string;
  /** Options for node itself, before the launcher (e.g. V8's `--trace-opt`). */
  nodeArgs?: string[];
}

export async function startServerProcess(t: Test, opts: ServerProcessOptions = {}): Promise<ServerProcess> {
  const ownDir = opts.directory === undefined;
  const directory = opts.directory ?? mkdtempSync(join(tmpdir(), 'bindle-e2e-'));
  const [command, ...prefix] = opts.withoutPreload === true ? ['env', '-u', 'NODE_OPTIONS', process.execPath] : [process.execPath];
  const child = trackChild(
    spawn(command, [...prefix, ...(opts.nodeArgs ?? []), opts.bin ?? SERVER_BIN, '--address', '127.0.0.1:0', '--directory', directory, ...(opts.args ?? [])], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  let exited: Promise<number | null> | undefined;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    if (exited === undefined) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      exited = exit;
    }
    return exited;
  };
  t.teardown(async () => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await stop();
    clearTimeout(timer);
    if (ownDir) rmSync(directory, { recursive: true, force: true });
  });
  const origin = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const m = /"address":"(http[s]?:\/\/[^"]+)"/.exec(output);
      if (m?.[1] !== undefined) resolve(m[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exit.then((code) => reject(new Error(`bindle-server exited with ${String(code)} before listening:\n${output}`)));
  });
  return { origin, url: `${origin}/v1/`, directory, child, output: () => output, stop };
}

/**
 * Makes a host signing key file at `<dir>/host-keys.toml` with `bindle-server keys create-host`
 * (asserting it succeeded on `t`), as a deployment on a shared index must; its path.
 */
export function createHostKeys(t: Test, dir: string): string {
  const hostKeys = join(dir, 'host-keys.toml');
  const made = spawnSync(process.execPath, [SERVER_BIN, 'keys', 'create-host', '--out', hostKeys], { encoding: 'utf8' });
  t.equal(made.status, 0, `keys create-host: ${made.stderr}`);
  return hostKeys;
}
