/**
 * End to end with real processes: a release is signed and pushed with the `bindle` CLI to a
 * real `bindle-server`; `bindle-kubelet` watches a manifest directory; a dropped Pod manifest
 * runs the module and its log holds the output; a second pod using the same module fetches
 * nothing (the server's request log shows one parcel GET, and the kubelet says "fetched 0");
 * a range reference skips a version yanked with the CLI; OnFailure restarts a failing module
 * up to the limit; `bindle-kubelet run` passes the module's exit code through; SIGTERM stops
 * the kubelet cleanly.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { podLogText, type LogStream } from '../../client/kubelet/pod-log.js';
import type { PodStatus } from '../../client/kubelet/pod-status.js';
import { buildWasmFixtures } from '../../scripts/build-wasm-fixtures.js';
import { sha256 } from '../helpers/bindles.js';
import { CLI_BIN, KUBELET_BIN, startServerProcess } from '../helpers/server-process.js';
import { dropPod, finalPodStatus, startKubelet } from '../helpers/static-pods.js';
import { trackChild } from '../../bench/lib/cleanup.js';

const run = promisify(execFile);

if (!existsSync(KUBELET_BIN) || !existsSync(CLI_BIN)) {
  throw new Error(`build first (npm run build): ${KUBELET_BIN} or ${CLI_BIN} is missing`);
}

// A dozen node processes: generous on a slow, busy machine.
t.setTimeout(300_000);

t.test('bindle-kubelet runs static pods from a bindle pushed with the CLI', async (t) => {
  const root = t.testdir({ manifests: {}, state: {}, cache: {}, standalone: {} });
  const keyring = join(root, 'keyring.toml');
  const secrets = join(root, 'secret_keys.toml');
  const modules = await buildWasmFixtures(join(root, 'wasm'));
  const baseEnv = { ...process.env, BINDLE_KEYRING: keyring, BINDLE_SECRET_FILE: secrets, XDG_CONFIG_HOME: root, XDG_DATA_HOME: root, XDG_CACHE_HOME: root };
  await run(process.execPath, [CLI_BIN, 'keys', 'create', 'Release Bot <release@example.com>', '--roles', 'creator'], { env: baseEnv });

  const server = await startServerProcess(t, { args: ['--keyring', keyring, '--unauthenticated'] });
  const env = { ...baseEnv, BINDLE_URL: server.url };
  const bindle = async (...args: string[]): Promise<string> => (await run(process.execPath, [CLI_BIN, ...args], { env })).stdout;

  /**
   * Writes a standalone bindle with one wasm parcel, then signs and pushes it with the CLI:
   * `sign-invoice` + `push`, or `push --sign` in one go.
   */
  const release = async (name: string, version: string, stem: string, oneGo = false): Promise<void> => {
    const module = modules.get(stem);
    if (module === undefined) throw new Error(`no fixture ${stem}`);
    const data = readFileSync(module);
    const dir = join(root, 'standalone', canonicalId({ name, version }));
    mkdirSync(join(dir, 'parcels'), { recursive: true });
    copyFileSync(module, join(dir, 'parcels', `${sha256(data)}.dat`));
    const invoice = [
      'bindleVersion = "1.0.0"',
      '[bindle]',
      `name = "${name}"`,
      `version = "${version}"`,
      '[[parcel]]',
      '[parcel.label]',
      `sha256 = "${sha256(data)}"`,
      'mediaType = "application/wasm"',
      `name = "${stem}.wasm"`,
      `size = ${data.length}`,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'invoice.toml'), invoice);
    if (oneGo) {
      await bindle('push', `${name}/${version}`, '-p', join(root, 'standalone'), '--sign');
    } else {
      await bindle('sign-invoice', join(dir, 'invoice.toml'), '-o', join(dir, 'invoice.toml'));
      await bindle('push', `${name}/${version}`, '-p', join(root, 'standalone'));
    }
  };
  await release('example.com/hello', '1.0.0', 'hello');
  await release('example.com/hello', '1.1.0', 'hello', true);
  await release('example.com/hello', '1.2.0', 'hello', true);
  await release('example.com/fail', '1.0.0', 'exit3', true);
  await bindle('yank', 'example.com/hello/1.2.0');

  const daemon = startKubelet(
    t,
    ['--pod-manifest-path', join(root, 'manifests'), '--state-dir', join(root, 'state'), '--poll-interval', '100', '--backoff-base', '50', '--max-restarts', '2'],
    { ...env, BINDLE_DIRECTORY: join(root, 'cache') },
  );
  const { child: kubelet, exited } = daemon;

  const drop = (pod: string, image: string, restartPolicy: string): void => dropPod(join(root, 'manifests'), pod, image, restartPolicy);
  const status = (pod: string): Promise<PodStatus> => finalPodStatus(join(root, 'state'), pod, daemon.log, 600);
  const podLog = (pod: string, stream?: LogStream): string => podLogText(readFileSync(join(root, 'state', 'pods', pod, 'main.log'), 'utf8'), stream);
  const helloSha = sha256(readFileSync(modules.get('hello') ?? ''));
  const parcelGets = (): number =>
    server
      .output()
      .split('\n')
      .filter((line) => line.includes('"method":"GET"') && line.includes(`@${helloSha}`)).length;

  drop('hello-1', 'bindle:example.com/hello/1.0.0', 'OnFailure');
  t.match(await status('hello-1'), { phase: 'Succeeded', containerStatuses: [{ imageID: 'example.com/hello/1.0.0', state: { terminated: { exitCode: 0 } } }] });
  t.equal(podLog('hello-1'), 'Hello from a bindle!\n', 'the log holds the module output');
  t.equal(parcelGets(), 1, 'the parcel was downloaded once');

  drop('hello-2', 'bindle:example.com/hello/1.0.0', 'Never');
  t.match(await status('hello-2'), { phase: 'Succeeded' });
  t.equal(podLog('hello-2'), 'Hello from a bindle!\n');
  t.equal(parcelGets(), 1, 'the second pod fetched no parcel from the server');
  t.match(daemon.log(), /pod hello-2, container "main": module example\.com\/hello\/1\.0\.0 "hello\.wasm" ready; fetched 0 parcels, 1 from the cache/);

  drop('hello-range', 'bindle:example.com/hello@^1.0.0', 'Never');
  t.match(await status('hello-range'), { phase: 'Succeeded', containerStatuses: [{ imageID: 'example.com/hello/1.1.0' }] }, 'the yanked 1.2.0 is skipped');
  t.match(daemon.log(), /bindle:example\.com\/hello@\^1\.0\.0: resolved to example\.com\/hello\/1\.1\.0/);
  t.equal(parcelGets(), 1, 'the other versions share the cached parcel');

  drop('fail', 'bindle:example.com/fail/1.0.0', 'OnFailure');
  t.match(await status('fail'), {
    phase: 'Failed',
    reason: 'RestartLimitReached',
    containerStatuses: [{ restartCount: 2, state: { terminated: { exitCode: 3, reason: 'Error' } } }],
  });
  t.equal(podLog('fail', 'stdout'), 'about to fail\n'.repeat(3));
  t.equal(podLog('fail', 'stderr'), 'failing with status 3\n'.repeat(3));

  const oneShot = (ref: string, extraEnv: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = trackChild(spawn(process.execPath, [KUBELET_BIN, 'run', ref], { env: { ...env, BINDLE_DIRECTORY: join(root, 'cache'), ...extraEnv } }));
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  t.same(await oneShot('bindle:example.com/hello/1.0.0'), { code: 0, stdout: 'Hello from a bindle!\n', stderr: '' }, 'run prints the output');
  t.same(await oneShot('bindle:example.com/fail/1.0.0'), { code: 3, stdout: 'about to fail\n', stderr: 'failing with status 3\n' }, 'run exits with the module');
  writeFileSync(join(root, 'empty-keyring.toml'), 'version = "1.0"\n');
  const untrusted = await oneShot('bindle:example.com/hello/1.1.0', { BINDLE_KEYRING: join(root, 'empty-keyring.toml') });
  t.equal(untrusted.code, 125);
  t.match(untrusted.stderr, /bindle-kubelet: .*not in the keyring.*\(unknown_signing_key\)/);
  t.equal(untrusted.stdout, '');

  kubelet.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops the kubelet cleanly');
  t.match(daemon.log(), /SIGTERM: stopping every pod[\s\S]*stopped/);
});
