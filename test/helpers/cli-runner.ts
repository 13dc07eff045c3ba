/**
 * Running the built `bindle` CLI (client/dist/bindle.cjs, as installed) as a real child process with an
 * isolated environment: no inherited BINDLE_* variables, and HOME and the XDG directories under
 * a per-test directory, so that defaults never touch the real user's files. Also sets up a
 * server host key and the keyrings the end-to-end tests share.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { SecretKeyEntry } from '../../schema/index.js';
import { renderKeyRing, renderSecretKeyFile } from '../../core/codec/key-file-codec.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import { creatorKey } from './bindles.js';
import { CLI_BIN } from './server-process.js';
import { trackChild } from '../../bench/lib/cleanup.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliRunOptions {
  /** Extra environment (on top of the isolated one). */
  env?: Record<string, string>;
  cwd?: string;
}

/** An environment with HOME and XDG_* under `home` and no BINDLE_* variables from the parent. */
export function isolatedEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('BINDLE_') && k !== 'SOURCE_DATE_EPOCH' && v !== undefined) env[k] = v;
  }
  return {
    ...env,
    HOME: home,
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    ...extra,
  };
}

/** A CLI runner bound to one isolated home directory. */
export function cliRunner(home: string): (args: string[], opts?: CliRunOptions) => Promise<CliResult> {
  mkdirSync(home, { recursive: true });
  return (args, opts = {}) =>
    new Promise<CliResult>((resolve, reject) => {
      const child = trackChild(
        spawn(process.execPath, [CLI_BIN, ...args], {
          cwd: opts.cwd ?? home,
          env: isolatedEnv(home, opts.env),
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
}

/** Asserts the exit code; on failure the output is shown as diagnostics. */
export function exits(t: Test, r: CliResult, code: number, message: string): void {
  t.equal(r.code, code, `${message}: exit ${code}`, { stdout: r.stdout, stderr: r.stderr });
}

/** A server's trust setup: its host key (given to it with --signing-keys) and keyrings. */
export interface TrustSetup {
  hostKey: SecretKeyEntry;
  /** The server's secret signing keys file (the host key). */
  signingKeysPath: string;
  /** A keyring trusting the test creator key (for the server's --keyring). */
  serverKeyringPath: string;
  /** A keyring trusting the test creator key and the host key (for the CLI's -r). */
  clientKeyringPath: string;
  /** `['--keyring', …, '--signing-keys', …]` for startServerProcess. */
  serverArgs: string[];
}

/** Writes a fresh host key and the keyrings into `dir`. */
export function trustSetup(dir: string): TrustSetup {
  mkdirSync(dir, { recursive: true });
  const hostKey = createSecretKey('e2e host <host@example.com>', ['host']);
  const creator = publicKeyEntry(creatorKey());
  const signingKeysPath = join(dir, 'host-signing-keys.toml');
  const serverKeyringPath = join(dir, 'server-keyring.toml');
  const clientKeyringPath = join(dir, 'client-keyring.toml');
  writeFileSync(signingKeysPath, renderSecretKeyFile({ version: '1.0', key: [hostKey] }), { mode: 0o600 });
  writeFileSync(serverKeyringPath, renderKeyRing({ version: '1.0', key: [creator] }));
  writeFileSync(clientKeyringPath, renderKeyRing({ version: '1.0', key: [creator, publicKeyEntry(hostKey)] }));
  return {
    hostKey,
    signingKeysPath,
    serverKeyringPath,
    clientKeyringPath,
    serverArgs: ['--keyring', serverKeyringPath, '--signing-keys', signingKeysPath],
  };
}
