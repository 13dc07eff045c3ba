/**
 * README.md's walk-throughs run as written, so they cannot go stale: each fenced block after a
 * `<!-- readme-walkthrough: NAME -->` marker is extracted and run by bash (`set -euo pipefail`)
 * against a real server process, with a temporary HOME and data directory and a free port in
 * place of 8080. Only what a reader has around the block is provided, never its inputs: the
 * server running in the background (as after the Quick start's `npm start`; it re-reads its
 * keyring when the block writes it) and, for the CLI block, a directory standing for the clone
 * (its `client/` linked in, an empty `bindle-data/`) with npm's global prefix in a temporary
 * directory on PATH (npm offline, so that nothing is fetched).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/http.js';
import { isolatedEnv } from '../helpers/cli-runner.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { SERVER_BIN } from '../helpers/server-process.js';
import { sha256 } from '../helpers/bindles.js';
import { trackProcessGroup } from '../../bench/lib/cleanup.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** The shell block after `<!-- readme-walkthrough: name -->`. */
function walkthrough(name: string): string {
  const marker = `<!-- readme-walkthrough: ${name} -->`;
  const at = README.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no ${marker}`);
  const m = /^```sh\n([\s\S]*?)^```$/m.exec(README.slice(at + marker.length));
  if (m?.[1] === undefined) throw new Error(`no sh block after ${marker}`);
  return m[1];
}

interface BashResult {
  code: number | null;
  output: string;
}

/** Runs a bash script in its own process group; at teardown everything it started is stopped. */
function runBash(t: Test, script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<BashResult> {
  const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (pid !== undefined) process.kill(-pid, signal);
    } catch {
      // the group has already exited
    }
  };
  const release = pid === undefined ? () => {} : trackProcessGroup(pid);
  t.teardown(() => {
    killGroup('SIGKILL');
    release();
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const timer = setTimeout(() => killGroup('SIGKILL'), 180_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    // A server the script left running holds its output open: stop the group when bash exits.
    child.once('exit', (code) => {
      clearTimeout(timer);
      killGroup('SIGTERM');
      child.once('close', () => resolve({ code, output }));
    });
  });
}

t.test('Quick start: the server curl walk-through', async (t) => {
  const port = await freePort();
  const home = t.testdir();
  const script = walkthrough('server').replaceAll('localhost:8080', `127.0.0.1:${port}`);
  t.match(script, /fixtures\/vectors\//, 'uses files the repository holds');
  t.notMatch(script, /\.\.\/shared/, 'nothing outside the repository');
  const env = isolatedEnv(home, { BINDLE_IP_ADDRESS_PORT: `127.0.0.1:${port}`, BINDLE_DIRECTORY: join(home, 'bindle-data') });
  const run = await runBash(t, script, REPO_ROOT, env);
  t.equal(run.code, 0, run.output);
  t.match(run.output, /"status":"OK"/, 'healthz answered');
  t.match(run.output, /"name":"enterprise\.com\/warpcore"/, 'the search finds the pushed bindle');
  t.match(run.output, /Content-Disposition: form-data; name="23f310b54076878fd4c36f0c60ec92011a8b406349b98dd37d08577d17397de5"/, 'the batch download sent the parcel');
});

t.test("the bindle CLI section's walk-through", async (t) => {
  const port = await freePort();
  const work = t.testdir({ 'bindle-data': {} });
  symlinkSync(join(REPO_ROOT, 'client'), join(work, 'client'));
  const block = walkthrough('cli');
  t.match(block, /^npm install -g \.\/client\b/m, 'the block puts bindle on PATH');
  t.match(block, /^cat > invoice\.toml <<EOF$/m, 'the block writes the invoice it signs');
  t.match(block, /^mkdir -p my-bindle\/parcels/m, 'the block makes the bindle directory it pushes');
  t.match(block, />\s*bindle-data\/keyring\.toml/, "the block puts the publisher key on the server's keyring");
  t.notMatch(block, /\.\.\/shared/, 'nothing outside the repository');

  // The server runs in the background, as after `npm start &` in the clone.
  const prelude = `
node ${JSON.stringify(SERVER_BIN)} --address 127.0.0.1:${port} --directory bindle-data --log-level warn &
SERVER=$!
curl -fsS --retry 30 --retry-connrefused --retry-delay 1 http://127.0.0.1:${port}/healthz >/dev/null
`;
  const script = `${prelude}\n${block.replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)}\nkill "$SERVER"\n`;
  const prefix = join(work, '.npm-global');
  const env = isolatedEnv(work, {
    PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`,
    npm_config_prefix: prefix,
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  });
  const run = await runBash(t, script, work, env);
  t.equal(run.code, 0, run.output);
  t.match(run.output, /example\.com\/app/, 'the CLI named the bindle');
  t.ok(existsSync(join(work, 'signed.toml')), 'sign-invoice wrote signed.toml');
  t.ok(existsSync(join(work, 'out', `${sha256('example.com/app/1.0.0')}.tar.gz`)), 'get --export wrote the tarball');
  t.equal(readFileSync(join(work, 'app', 'hello.txt'), 'utf8'), 'hello from the README\n', 'get --extract wrote the parcel');
});
