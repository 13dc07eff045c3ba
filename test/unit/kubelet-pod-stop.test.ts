/**
 * Stopping pods whose modules are still being fetched (in-process kubelet, real server behind a
 * proxy that holds every request for `example.com/hang` unanswered until the test ends, and a
 * client timeout far beyond the test): removing or replacing such a pod's manifest neither
 * waits for the fetch nor holds up other pods, its final status is written, a pod replacing it
 * starts after that, and the kubelet stops without waiting for the fetch either.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { parseStrategy } from '../../core/signing/verification.js';
import { BindleClient } from '../../client/lib/index.js';
import { Kubelet } from '../../client/kubelet/kubelet.js';
import { ModuleStore } from '../../client/kubelet/module-store.js';
import type { PodStatus } from '../../client/kubelet/pod-status.js';
import { creatorKeyring } from '../helpers/bindles.js';
import { listeningApp, moduleRuntime, publisher, pushBindle, wasm, wasmParcel } from '../helpers/kubelet-env.js';

interface HangingProxy {
  url: string;
  /** Requests held so far (none is answered before teardown). */
  held: () => number;
}

/** Forwards to `upstream` except requests naming example.com/hang, which it holds; listens on 127.0.0.1:0, closed at teardown. */
async function hangingProxy(t: Test, upstream: string): Promise<HangingProxy> {
  const target = new URL(upstream);
  const held = new Set<ServerResponse>();
  let count = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if ((req.url ?? '').includes('example.com/hang')) {
      count += 1;
      held.add(res);
      return;
    }
    const forward = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (reply) => {
      res.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1/`, held: () => count };
}

interface Env {
  kubelet: Kubelet;
  manifests: string;
  state: string;
  log: string[];
}

async function startKubelet(t: Test, url: string): Promise<Env> {
  const root = mkdtempSync(join(tmpdir(), 'bindle-kubelet-stop-'));
  for (const dir of ['manifests', 'state', 'cache']) mkdirSync(join(root, dir));
  // A request to the proxy's held path never ends while the test runs.
  const agent = new Agent({ headersTimeout: 600_000, bodyTimeout: 600_000 });
  const client = new BindleClient({ baseUrl: url, keyring: creatorKeyring(), strategy: parseStrategy('CreativeIntegrity'), retries: 0, timeoutMs: 600_000, dispatcher: agent });
  const log: string[] = [];
  const kubelet = new Kubelet({
    store: new ModuleStore({ client, cacheDir: join(root, 'cache'), log: (m) => log.push(m) }),
    runtime: (await moduleRuntime()).runtime,
    manifestDir: join(root, 'manifests'),
    stateDir: join(root, 'state'),
    pollIntervalMs: 25,
    backoff: { baseMs: 10, capMs: 40 },
    log: (m) => log.push(m),
  });
  // Its connections are destroyed: a request still held by the proxy ends with them.
  t.teardown(async () => {
    await kubelet.stop();
    await client.close();
    await agent.destroy();
    rmSync(root, { recursive: true, force: true });
  });
  await kubelet.start();
  return { kubelet, manifests: join(root, 'manifests'), state: join(root, 'state'), log };
}

function dropManifest(env: Env, pod: string, image: string): void {
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${pod}\nspec:\n  restartPolicy: Never\n  containers:\n    - name: main\n      image: ${JSON.stringify(image)}\n`;
  writeFileSync(join(env.manifests, `.${pod}.tmp`), text);
  renameSync(join(env.manifests, `.${pod}.tmp`), join(env.manifests, `${pod}.yaml`));
}

function readStatus(env: Env, pod: string): PodStatus | undefined {
  const path = join(env.state, 'pods', pod, 'status.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as PodStatus) : undefined;
}

/** Polls until `done` holds, at most `polls` × 25 ms (generous: the held fetch would block for the test's whole run). */
async function waitFor(what: string, done: () => boolean, env: Env, polls = 2400): Promise<void> {
  for (let i = 0; i < polls; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} never happened\nkubelet log:\n${env.log.join('\n')}`);
}

const finished = (s: PodStatus | undefined): boolean => s?.phase === 'Succeeded' || s?.phase === 'Failed';

t.test('a pod stopped while its module is fetched holds up nothing', async (t) => {
  const { url } = await listeningApp(t);
  const pub = publisher(t, url);
  await pushBindle(pub, 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', await wasm('hello'))]);
  const proxy = await hangingProxy(t, url);
  const env = await startKubelet(t, proxy.url);

  t.test('a removed manifest: the other pods start at once', async (t) => {
    dropManifest(env, 'stuck', 'bindle:example.com/hang/1.0.0');
    await waitFor('the fetch of example.com/hang', () => proxy.held() >= 1, env);
    rmSync(join(env.manifests, 'stuck.yaml'));
    dropManifest(env, 'other', 'bindle:example.com/hello/1.0.0');
    await waitFor('pod other finishing', () => finished(readStatus(env, 'other')), env);
    t.match(readStatus(env, 'other'), { phase: 'Succeeded' }, 'another pod ran while the fetch is still held');
    await waitFor('the final status of stuck', () => readStatus(env, 'stuck')?.reason === 'Deleted', env);
    t.match(readStatus(env, 'stuck'), { phase: 'Failed', reason: 'Deleted', message: 'the manifest was removed', containerStatuses: [{ state: { waiting: {} } }] });
  });

  t.test('a replaced manifest: the new pod starts once the old one has stopped', async (t) => {
    const before = proxy.held();
    dropManifest(env, 'swap', 'bindle:example.com/hang/1.0.0');
    await waitFor('the fetch of example.com/hang', () => proxy.held() > before, env);
    dropManifest(env, 'swap', 'bindle:example.com/hello/1.0.0');
    await waitFor('the replacement finishing', () => readStatus(env, 'swap')?.phase === 'Succeeded', env);
    t.match(readStatus(env, 'swap'), { containerStatuses: [{ image: 'bindle:example.com/hello/1.0.0', state: { terminated: { exitCode: 0 } } }] });
    t.match(env.log.join('\n'), /pod swap: manifest .* changed; replacing the pod[\s\S]*pod swap: Failed \(Replaced\)[\s\S]*pod swap: starting from/);
  });

  t.test('the kubelet stops without waiting for the fetch', async (t) => {
    const before = proxy.held();
    dropManifest(env, 'last', 'bindle:example.com/hang/1.0.0');
    await waitFor('the fetch of example.com/hang', () => proxy.held() > before, env);
    await env.kubelet.stop();
    t.match(readStatus(env, 'last'), { phase: 'Failed', reason: 'KubeletStopped' }, 'its final status is written');
  });
});
