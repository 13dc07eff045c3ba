/**
 * Signals while a module is being fetched, with real processes: the server is a TCP listener on
 * 127.0.0.1 that accepts connections and never answers (a request to it waits for the client's
 * 30 s timeout, then its retries). On SIGTERM the `bindle-kubelet` daemon abandons the fetch,
 * writes the pod's final status and exits 0 within its shutdown grace plus a margin; `bindle-kubelet
 * run` stops at once on SIGINT (exit 130) or SIGTERM (exit 143).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import type { PodStatus } from '../../client/kubelet/pod-status.js';
import { KUBELET_BIN } from '../helpers/server-process.js';
import { dropPod, startKubelet } from '../helpers/static-pods.js';
import { trackChild } from '../../bench/lib/cleanup.js';

if (!existsSync(KUBELET_BIN)) throw new Error(`build first (npm run build): ${KUBELET_BIN} is missing`);

t.setTimeout(180_000);

/**
 * How long a process may take to exit after the signal: far below the minutes a fetch from the
 * silent server lasts (30 s per attempt, retried), generous for a loaded machine.
 */
const EXIT_BOUND_MS = 20_000;

interface SilentServer {
  url: string;
  /** Resolves at the first connection (the fetch is under way). */
  connected: Promise<void>;
}

/** A listener on 127.0.0.1, port 0, that never answers; closed (its connections destroyed) at teardown. */
async function silentServer(t: Test): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let onConnect: () => void = () => undefined;
  const connected = new Promise<void>((resolve) => (onConnect = resolve));
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onConnect();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1/`, connected };
}

/** `exited`, or a rejection once EXIT_BOUND_MS passed. */
async function within<T>(exited: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running ${EXIT_BOUND_MS} ms after the signal`)), EXIT_BOUND_MS);
  });
  try {
    return await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('SIGTERM while a module is being fetched: the daemon exits within its grace, the final status written', async (t) => {
  const root = t.testdir({ manifests: {}, state: {}, cache: {}, 'keyring.toml': 'version = "1.0"\n' });
  const silent = await silentServer(t);
  const daemon = startKubelet(t, [
    '--server', silent.url,
    '--keyring', join(root, 'keyring.toml'),
    '--cache-dir', join(root, 'cache'),
    '--pod-manifest-path', join(root, 'manifests'),
    '--state-dir', join(root, 'state'),
    '--poll-interval', '100',
    '--shutdown-grace', '500',
  ]);
  dropPod(join(root, 'manifests'), 'waiting', 'bindle:example.com/hello/1.0.0', 'Never');
  await silent.connected;
  daemon.child.kill('SIGTERM');
  t.equal(await within(daemon.exited, 'the daemon'), 0, 'exits 0');
  const status = JSON.parse(readFileSync(join(root, 'state', 'pods', 'waiting', 'status.json'), 'utf8')) as PodStatus;
  t.match(status, { reason: 'KubeletStopped', containerStatuses: [{ state: { waiting: {} } }] }, 'the final status says why it stopped');
  t.match(daemon.log(), /SIGTERM: stopping every pod[\s\S]*stopped/);
});

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  t.test(`run: ${signal} while the module is being fetched ends it at once with ${code}`, async (t) => {
    const root = t.testdir({ cache: {}, 'keyring.toml': 'version = "1.0"\n' });
    const silent = await silentServer(t);
    const child = trackChild(
      spawn(process.execPath, [KUBELET_BIN, 'run', '-s', silent.url, '-r', join(root, 'keyring.toml'), '-d', join(root, 'cache'), '--pull-policy', 'Always', 'bindle:example.com/hello/1.0.0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    await silent.connected;
    child.kill(signal);
    t.equal(await within(exited, 'run'), code);
    t.match(stderr, new RegExp(`${signal} while resolving bindle:example\\.com/hello/1\\.0\\.0: stopped before the module started`));
  });
}
