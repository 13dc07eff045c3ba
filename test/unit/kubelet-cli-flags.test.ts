/**
 * The kubelet's connection flags, through `kubeletMain run` against a local HTTP peer:
 * `--token-file` sends the file's bearer token (a bare token or the reference's TOML token
 * file), refuses to be combined with HTTP Basic, and names an unreadable file; `--timeout`
 * gives up on a server that never answers.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeletMain, processExitCode, type KubeletIo } from '../../client/kubelet/kubelet-cli.js';
import { serveLocally } from '../helpers/local-server.js';

/** Runs `bindle-kubelet <args>` in-process; resolves with the exit code and stderr. */
async function kubelet(t: Test, args: string[]): Promise<{ code: number; stderr: string }> {
  const dir = t.testdirName;
  let stderr = '';
  const io: KubeletIo = {
    env: { XDG_CONFIG_HOME: dir, XDG_CACHE_HOME: dir, XDG_DATA_HOME: dir },
    cwd: dir,
    stderr: (text) => (stderr += text),
    fds: { stdin: 0, stdout: 1, stderr: 2 },
    onSignal: () => undefined,
  };
  const code = await kubeletMain(args, io);
  return { code, stderr };
}

function setup(t: Test): { keyring: string; dir: string } {
  const dir = t.testdir({ 'keyring.toml': 'version = "1.0"\n' });
  return { keyring: join(dir, 'keyring.toml'), dir };
}

t.test('--token-file sends a bearer token', async (t) => {
  const { keyring, dir } = setup(t);
  const seen: Array<string | undefined> = [];
  const origin = await serveLocally(t, (req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(404, { 'content-type': 'application/toml' }).end('error = "bindle not found"\n');
  });
  writeFileSync(join(dir, 'token'), 's3cr3t-token\n');
  writeFileSync(join(dir, 'login.toml'), 'id_token = "id-token-from-login"\n');
  const ref = 'bindle:example.com/hello/1.0.0';
  const server = `${origin}/v1/`;
  let r = await kubelet(t, ['-s', server, '-r', keyring, '--token-file', join(dir, 'token'), 'run', ref]);
  t.equal(r.code, 125);
  t.match(r.stderr, /not found/);
  r = await kubelet(t, ['-s', server, '-r', keyring, '-t', join(dir, 'login.toml'), 'run', ref]);
  t.equal(r.code, 125);
  t.same([...new Set(seen)], ['Bearer s3cr3t-token', 'Bearer id-token-from-login'], 'a bare token, or the id_token of a bindle login file');
  const before = seen.length;
  r = await kubelet(t, ['-s', server, '-r', keyring, '--token-file', join(dir, 'token'), '--http-user', 'u', '--http-password', 'p', 'run', ref]);
  t.equal(r.code, 125);
  t.match(r.stderr, /either HTTP Basic credentials .* or --token-file, not both/);
  r = await kubelet(t, ['-s', server, '-r', keyring, '--token-file', join(dir, 'missing'), 'run', ref]);
  t.equal(r.code, 125);
  t.match(r.stderr, /cannot read the token file .*missing \(--token-file \/ BINDLE_TOKEN_FILE\)/);
  t.equal(seen.length, before, 'nothing was sent with bad credentials');
});

t.test('--timeout gives up on a silent server', async (t) => {
  const { keyring } = setup(t);
  const origin = await serveLocally(t, () => undefined);
  const r = await kubelet(t, ['-s', `${origin}/v1/`, '-r', keyring, '--timeout', '1', 'run', 'bindle:example.com/hello/1.0.0']);
  t.equal(r.code, 125);
  t.match(r.stderr, /no reply within 1000 ms/);
  const bad = await kubelet(t, ['--timeout', '0', 'run', 'bindle:example.com/hello/1.0.0']);
  t.equal(bad.code, 2, 'a timeout below 1 s is a usage error');
});

t.test("run exits with the module's exit code, and with 1 for one a process cannot exit with", async (t) => {
  for (const code of [0, 1, 3, 125, 137, 255]) t.equal(processExitCode(code), code, `${code} as it is`);
  for (const code of [256, 512, 257, 1000, -1, 2.5]) t.equal(processExitCode(code), 1, `${code} is a failure, never 0`);
});
