/**
 * A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution) started with a
 * generated config in a temp directory, listening on 127.0.0.1 at a port it picks (it logs
 * it), optionally with htpasswd Basic auth, and always stopped at teardown; plus `skopeo`, the
 * OCI client the tests copy with. Without either program, a test is skipped with the reason,
 * except under CI=true, where that is a failure (.ci/run installs both).
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { trackChild } from '../../bench/lib/cleanup.js';

const exec = promisify(execFile);

/** The programs the registry tests need, found on PATH. */
const PROGRAMS = ['docker-registry', 'skopeo'] as const;

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Why the registry tests cannot run here (`docker-registry` or `skopeo` missing), or false.
 * Under CI=true a missing program fails `t` instead of skipping.
 */
export function registrySkip(t: Test): string | false {
  const missing = PROGRAMS.filter((p) => !onPath(p));
  if (missing.length === 0) return false;
  const reason = `${missing.join(' and ')} not installed (apt-get install skopeo docker-registry)`;
  if (process.env.CI === 'true') t.fail(`CI needs ${reason}`);
  return reason;
}

/** A running registry. */
export interface Registry {
  /** `127.0.0.1:<port>`: what image references and skopeo's `docker://` start with. */
  host: string;
  /** Everything it logged so far. */
  output(): string;
}

/**
 * Starts `docker-registry serve` on a fresh storage directory; with `htpasswd` (the path of a
 * bcrypt htpasswd file), every request needs Basic credentials. Stopped and removed at teardown.
 */
export async function startRegistry(t: Test, opts: { htpasswd?: string } = {}): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-oci-registry-'));
  const auth = opts.htpasswd === undefined ? '' : `auth:\n  htpasswd:\n    realm: bindle-tests\n    path: ${opts.htpasswd}\n`;
  const config = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    'http:',
    '  addr: 127.0.0.1:0',
    '  secret: bindle-tests',
    auth,
  ].join('\n');
  writeFileSync(join(dir, 'config.yml'), config);
  const child = trackChild(spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  });
  const host = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(output);
      if (m?.[1] !== undefined) resolve(m[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`docker-registry exited (${String(code)}) before listening:\n${output}`)));
  });
  return { host, output: () => output };
}

/** Runs skopeo (plain HTTP to the test registry) and resolves with its stdout; a failure rejects with its stderr. */
export async function skopeo(args: readonly string[]): Promise<string> {
  try {
    return (await exec('skopeo', [...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}
