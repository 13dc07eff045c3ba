/**
 * The packaged `bindle-server` failing to start: what the environment gets in the way of (the
 * port in use, a data directory that is a file, a TLS file missing or not PEM) is one line on
 * stderr naming the setting and where it was given, exit status 1; a configuration that cannot
 * work (a metrics address on the main address) is a validation error, exit status 2; neither
 * prints a stack trace. Also the command line's unknown commands.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SERVER_BIN } from '../helpers/server-process.js';

/** Runs bindle-server to its exit (it fails before listening, or the timeout kills it). */
function serverRun(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [SERVER_BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

/** The one line a failed start prints: `bindle-server: <message>` and nothing else (no stack). */
function oneLine(t: Test, stderr: string, message: RegExp): void {
  t.match(stderr, /^bindle-server: [^\n]*\n$/, `one line: ${stderr}`);
  t.match(stderr, message);
}

/** A TCP listener on a free port of 127.0.0.1, closed at teardown: its port. */
async function occupiedPort(t: Test): Promise<number> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  return (listener.address() as AddressInfo).port;
}

t.test('a port in use: the main or the metrics address, named with its source', async (t) => {
  const port = await occupiedPort(t);
  const dir = t.testdir({});
  const byFlag = serverRun(['--address', `127.0.0.1:${port}`, '--directory', join(dir, 'a')]);
  t.equal(byFlag.status, 1, 'a start-up failure');
  oneLine(t, byFlag.stderr, new RegExp(`^bindle-server: --address: 127\\.0\\.0\\.1:${port} is already in use; .*\\(EADDRINUSE\\)`));
  const byEnv = serverRun(['--directory', join(dir, 'b')], { BINDLE_IP_ADDRESS_PORT: `127.0.0.1:${port}` });
  t.equal(byEnv.status, 1);
  oneLine(t, byEnv.stderr, /^bindle-server: environment variable BINDLE_IP_ADDRESS_PORT: .*already in use/);
  const metrics = serverRun(['--address', '127.0.0.1:0', '--metrics-address', `127.0.0.1:${port}`, '--directory', join(dir, 'c')]);
  t.equal(metrics.status, 1);
  oneLine(t, metrics.stderr, new RegExp(`^bindle-server: --metrics-address: 127\\.0\\.0\\.1:${port} is already in use`));
});

t.test('a metrics address equal to the main address is a configuration error from any source', async (t) => {
  const dir = t.testdir({ 'server.toml': 'metricsAddress = "127.0.0.1:47123"\n' });
  const byFlag = serverRun(['--address', '127.0.0.1:47123', '--metrics-address', '127.0.0.1:47123', '--directory', join(dir, 'a')]);
  t.equal(byFlag.status, 2, 'invalid configuration');
  oneLine(t, byFlag.stderr, /^bindle-server: --metrics-address \(127\.0\.0\.1:47123\) conflicts with --address \(127\.0\.0\.1:47123\)/);
  const byFile = serverRun(['--config-path', join(dir, 'server.toml'), '--directory', join(dir, 'b')], { BINDLE_IP_ADDRESS_PORT: '127.0.0.1:47123' });
  t.equal(byFile.status, 2);
  oneLine(t, byFile.stderr, /^bindle-server: config file .*server\.toml key "metricsAddress" .*conflicts with environment variable BINDLE_IP_ADDRESS_PORT/);
});

t.test('a data directory that is a file, or under one', async (t) => {
  const dir = t.testdir({ 'a-file': 'not a directory' });
  const file = join(dir, 'a-file');
  const isFile = serverRun(['--address', '127.0.0.1:0', '--directory', file]);
  t.equal(isFile.status, 1);
  oneLine(t, isFile.stderr, /^bindle-server: --directory: \S*a-file is not a directory$/m);
  const under = serverRun(['--address', '127.0.0.1:0'], { BINDLE_DIRECTORY: join(file, 'data') });
  t.equal(under.status, 1);
  oneLine(t, under.stderr, /^bindle-server: environment variable BINDLE_DIRECTORY: .*a-file\/data cannot be created: a part of its path is a file/);
});

t.test('a TLS certificate or key that is missing or not PEM', async (t) => {
  const dir = t.testdir({ 'junk.pem': 'no PEM here\n' });
  const missing = join(dir, 'missing.pem');
  const junk = join(dir, 'junk.pem');
  const noCert = serverRun(['--address', '127.0.0.1:0', '--directory', join(dir, 'a'), '--tls-cert', missing, '--tls-key', junk]);
  t.equal(noCert.status, 1);
  oneLine(t, noCert.stderr, /^bindle-server: --tls-cert: .*missing\.pem cannot be read: no such file or directory \(ENOENT\)/);
  const notPem = serverRun(['--address', '127.0.0.1:0', '--directory', join(dir, 'b'), '--tls-cert', junk], { BINDLE_TLS_KEY: junk });
  t.equal(notPem.status, 1);
  oneLine(t, notPem.stderr, /^bindle-server: --tls-cert: .*junk\.pem is not a PEM certificate/);
  const certPem = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', '/dev/null'], { encoding: 'utf8' });
  if (certPem.status !== 0) {
    t.comment('skipped the key checks: no openssl command to make a test certificate');
    return;
  }
  const cert = join(dir, 'cert.pem');
  writeFileSync(cert, certPem.stdout);
  const badKey = serverRun(['--address', '127.0.0.1:0', '--directory', join(dir, 'c'), '--tls-cert', cert], { BINDLE_TLS_KEY: junk });
  t.equal(badKey.status, 1);
  oneLine(t, badKey.stderr, /^bindle-server: environment variable BINDLE_TLS_KEY: .*junk\.pem is not a PEM private key/);
  const otherKey = join(dir, 'other-key.pem');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=other', '-days', '1', '-keyout', otherKey, '-out', '/dev/null']);
  const mismatch = serverRun(['--address', '127.0.0.1:0', '--directory', join(dir, 'd'), '--tls-cert', cert, '--tls-key', otherKey]);
  t.equal(mismatch.status, 1);
  oneLine(t, mismatch.stderr, /^bindle-server: --tls-key: .*other-key\.pem is not the private key of the certificate in --tls-cert: .*cert\.pem$/m);
});

t.test('an unknown command is named and the commands listed; a stray argument is named', async (t) => {
  const unknown = serverRun(['frobnicate']);
  t.equal(unknown.status, 2);
  oneLine(t, unknown.stderr, /^bindle-server: unknown command "frobnicate"; the commands are reindex, export, migrate, keys, gc, fsck/);
  const stray = serverRun(['--address', '127.0.0.1:0', 'frobnicate']);
  t.equal(stray.status, 2);
  oneLine(t, stray.stderr, /^bindle-server: unexpected argument "frobnicate"/);
});

t.test('a bad ACL file fails the start before anything is created in the data directory', async (t) => {
  const dir = t.testdir({
    'tokens': `ci:${'0'.repeat(64)}\n`,
    'acl.toml': '[[grant]]\nto = ["ci"]\nallow = ["push"]\non = ["example.com//"]\n',
  });
  const data = join(dir, 'data');
  const run = serverRun(['--address', '127.0.0.1:0', '--directory', data, '--token-file', join(dir, 'tokens'), '--acl-file', join(dir, 'acl.toml')]);
  t.not(run.status, 0);
  oneLine(t, run.stderr, /^bindle-server: --acl-file: ACL file .*acl\.toml: grant\[0\]\.on\[0\] "example\.com\/\/" is a prefix of no valid bindle name/);
  t.same(existsSync(data) ? readdirSync(data) : [], [], 'no host key, no index, no parcel store');
});
