/**
 * The kubelet in-process (real server over HTTP, real module store, modules in their own
 * sandboxed processes): static pods from a manifest directory, status.json content, logs, restart
 * policies with capped back-off and a restart limit, refused pods, selection by annotations,
 * yanked bindles, and pods stopped when their manifest goes away or the kubelet stops.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import type { Label } from '../../schema/index.js';
import { Kubelet } from '../../client/kubelet/kubelet.js';
import { backoffDelay, type BackoffOptions } from '../../client/kubelet/pod-worker.js';
import { MAX_LOG_BYTES, podLogText, type LogStream } from '../../client/kubelet/pod-log.js';
import type { PodStatus } from '../../client/kubelet/pod-status.js';
import { listeningApp, moduleRuntime, moduleStore, publisher, pushBindle, wasm, wasmParcel } from '../helpers/kubelet-env.js';

interface Env {
  url: string;
  manifests: string;
  state: string;
  kubelet: Kubelet;
  log: string[];
  storeLog: string[];
}

async function startKubelet(t: Test, url: string, backoff: Partial<BackoffOptions> = {}): Promise<Env> {
  const root = mkdtempSync(join(tmpdir(), 'bindle-kubelet-pods-'));
  for (const dir of ['manifests', 'state', 'cache']) mkdirSync(join(root, dir));
  const { store, logs: storeLog } = moduleStore(t, url, { cacheDir: join(root, 'cache') });
  const log: string[] = [];
  const kubelet = new Kubelet({
    store,
    runtime: (await moduleRuntime()).runtime,
    manifestDir: join(root, 'manifests'),
    stateDir: join(root, 'state'),
    pollIntervalMs: 25,
    backoff: { baseMs: 10, capMs: 40, ...backoff },
    log: (m) => log.push(m),
  });
  // One teardown, in this order: the kubelet stops (its last status writes done), then its files go.
  t.teardown(async () => {
    await kubelet.stop();
    rmSync(root, { recursive: true, force: true });
  });
  await kubelet.start();
  return { url, manifests: join(root, 'manifests'), state: join(root, 'state'), kubelet, log, storeLog };
}

/** Writes a manifest atomically (as a kubelet's manifest directory should be written). */
function dropManifest(env: Env, file: string, text: string): void {
  const temp = join(env.manifests, `.${file}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, join(env.manifests, file));
}

interface PodYamlOptions {
  restartPolicy?: string;
  args?: string[];
  annotations?: Record<string, string>;
  pull?: string;
  /** `resources.limits`, e.g. `{ memory: '64Mi' }`. */
  limits?: Record<string, string>;
  activeDeadlineSeconds?: number;
  /** Extra container lines (indented for the container mapping), e.g. an env list. */
  containerLines?: string[];
}

function podYaml(name: string, image: string, opts: PodYamlOptions = {}): string {
  const lines = ['apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${name}`];
  if (opts.annotations !== undefined) {
    lines.push('  annotations:');
    for (const [k, v] of Object.entries(opts.annotations)) lines.push(`    ${k}: ${JSON.stringify(v)}`);
  }
  lines.push('spec:');
  if (opts.restartPolicy !== undefined) lines.push(`  restartPolicy: ${opts.restartPolicy}`);
  if (opts.activeDeadlineSeconds !== undefined) lines.push(`  activeDeadlineSeconds: ${opts.activeDeadlineSeconds}`);
  lines.push('  containers:', '    - name: main', `      image: ${JSON.stringify(image)}`);
  if (opts.limits !== undefined) lines.push(`      resources: { limits: ${JSON.stringify(opts.limits)} }`);
  lines.push(...(opts.containerLines ?? []));
  if (opts.pull !== undefined) lines.push(`      imagePullPolicy: ${opts.pull}`);
  if (opts.args !== undefined) lines.push(`      args: ${JSON.stringify(opts.args)}`);
  return `${lines.join('\n')}\n`;
}

function readStatus(env: Env, pod: string): PodStatus | undefined {
  const path = join(env.state, 'pods', pod, 'status.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as PodStatus) : undefined;
}

/** Polls status.json until `done` holds (fails the test after 20 s). */
async function waitForStatus(env: Env, pod: string, done: (s: PodStatus) => boolean): Promise<PodStatus> {
  for (let i = 0; i < 800; i++) {
    const status = readStatus(env, pod);
    if (status !== undefined && done(status)) return status;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`pod ${pod} never reached the expected status; last: ${JSON.stringify(readStatus(env, pod))}\nkubelet log:\n${env.log.join('\n')}`);
}

const finished = (s: PodStatus): boolean => s.phase === 'Succeeded' || s.phase === 'Failed';

/** True once the pod's log shows its module started (spin.wat writes one line first). */
function existsLog(env: Env, pod: string): boolean {
  const path = join(env.state, 'pods', pod, 'main.log');
  return existsSync(path) && readFileSync(path, 'utf8') !== '';
}

/** What the container wrote (one stream, or both as kubectl logs shows them), from its CRI-format log. */
function podLog(env: Env, pod: string, container = 'main', stream?: LogStream): string {
  return podLogText(readFileSync(join(env.state, 'pods', pod, `${container}.log`), 'utf8'), stream);
}

async function server(t: Test): Promise<string> {
  const { url } = await listeningApp(t);
  const pub = publisher(t, url);
  const parcels: TestParcel[] = [wasmParcel('hello.wasm', await wasm('hello'))];
  await pushBindle(pub, 'example.com/hello', '1.0.0', parcels);
  await pushBindle(pub, 'example.com/fail', '1.0.0', [wasmParcel('exit3.wasm', await wasm('exit3'))]);
  await pushBindle(pub, 'example.com/spin', '1.0.0', [wasmParcel('spin.wasm', await wasm('spin'))]);
  await pushBindle(pub, 'example.com/grow', '1.0.0', [wasmParcel('grow.wasm', await wasm('grow'))]);
  await pushBindle(pub, 'example.com/echo', '1.0.0', [wasmParcel('echo.wasm', await wasm('echo'))]);
  await pushBindle(pub, 'example.com/yanked', '1.0.0', parcels);
  await pub.yankInvoice('example.com/yanked/1.0.0');
  return url;
}

t.test('back-off doubles and is capped', async (t) => {
  const opts = { baseMs: 10_000, capMs: 300_000 };
  t.same([0, 1, 2, 3, 4, 5, 6, 100].map((n) => backoffDelay(n, opts)), [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
});

t.test('static pods', async (t) => {
  const url = await server(t);

  t.test('a pod runs, logs its output and reports Succeeded; a second pod fetches nothing', async (t) => {
    const env = await startKubelet(t, url);
    dropManifest(env, 'hello.yaml', podYaml('hello', 'bindle:example.com/hello/1.0.0', { restartPolicy: 'OnFailure' }));
    const status = await waitForStatus(env, 'hello', finished);
    t.match(status, {
      name: 'hello',
      manifest: join(env.manifests, 'hello.yaml'),
      phase: 'Succeeded',
      restartPolicy: 'OnFailure',
      containerStatuses: [
        {
          name: 'main',
          image: 'bindle:example.com/hello/1.0.0',
          imageID: 'example.com/hello/1.0.0',
          module: { name: 'hello.wasm' },
          started: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0, reason: 'Completed' } },
        },
      ],
    });
    t.notOk('reason' in status, 'nothing to explain');
    t.equal(podLog(env, 'hello'), 'Hello from a bindle!\n');
    t.match(env.log.join('\n'), /pod hello, container "main": module example\.com\/hello\/1\.0\.0 "hello\.wasm" ready; fetched 1 parcel, 0 from the cache/);

    dropManifest(env, 'hello-again.yaml', podYaml('hello-again', 'bindle:example.com/hello/1.0.0', { restartPolicy: 'Never' }));
    await waitForStatus(env, 'hello-again', finished);
    t.equal(podLog(env, 'hello-again'), 'Hello from a bindle!\n');
    t.match(env.log.join('\n'), /pod hello-again, container "main": module example\.com\/hello\/1\.0\.0 "hello\.wasm" ready; fetched 0 parcels, 1 from the cache/);
  });

  t.test('restartPolicy OnFailure restarts a failing module with capped back-off, up to the limit', async (t) => {
    const env = await startKubelet(t, url, { maxRestarts: 3 });
    dropManifest(env, 'fail.yaml', podYaml('fail', 'bindle:example.com/fail/1.0.0', { restartPolicy: 'OnFailure' }));
    const status = await waitForStatus(env, 'fail', finished);
    t.match(status, {
      phase: 'Failed',
      reason: 'RestartLimitReached',
      message: 'container "main" reached the restart limit (3)',
      containerStatuses: [
        {
          restartCount: 3,
          state: { terminated: { exitCode: 3, reason: 'Error' } },
          lastState: { terminated: { exitCode: 3, reason: 'Error' } },
        },
      ],
    });
    t.equal(podLog(env, 'fail', 'main', 'stdout'), 'about to fail\n'.repeat(4), 'four runs, one log: stdout');
    t.equal(podLog(env, 'fail', 'main', 'stderr'), 'failing with status 3\n'.repeat(4), 'and stderr, kept apart');
    const records = readFileSync(join(env.state, 'pods', 'fail', 'main.log'), 'utf8').split('\n').filter((l) => l !== '');
    t.equal(records.length, 8);
    for (const r of records) t.match(r, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout F about to fail|stderr F failing with status 3)$/, 'CRI log records');
    const restarts = env.log.filter((l) => l.includes('pod fail, container "main": restart'));
    t.same(restarts.map((l) => /in (\d+) ms/.exec(l)?.[1]), ['10', '20', '40'], 'the delay doubles up to the cap');
  });

  t.test('restartPolicy Never does not restart; Always restarts even after success', async (t) => {
    const env = await startKubelet(t, url, { maxRestarts: 2 });
    dropManifest(env, 'once.yaml', podYaml('once', 'bindle:example.com/fail/1.0.0', { restartPolicy: 'Never' }));
    dropManifest(env, 'always.yaml', podYaml('always', 'bindle:example.com/hello/1.0.0'));
    const once = await waitForStatus(env, 'once', finished);
    t.match(once, { phase: 'Failed', containerStatuses: [{ restartCount: 0, state: { terminated: { exitCode: 3 } } }] });
    t.notOk(once.containerStatuses[0]?.lastState, 'never restarted');
    const always = await waitForStatus(env, 'always', finished);
    t.match(always, { phase: 'Succeeded', reason: 'RestartLimitReached', containerStatuses: [{ restartCount: 2, state: { terminated: { exitCode: 0 } } }] });
    t.equal(podLog(env, 'always'), 'Hello from a bindle!\n'.repeat(3));
  });

  t.test('refused pods report why', async (t) => {
    const env = await startKubelet(t, url);
    dropManifest(env, 'missing.yaml', podYaml('missing', 'bindle:example.com/nothing-here/1.0.0'));
    dropManifest(env, 'never.yaml', podYaml('never', 'bindle:example.com/hello/1.0.0', { pull: 'Never' }));
    dropManifest(env, 'yanked.yaml', podYaml('yanked', 'bindle:example.com/yanked/1.0.0', { restartPolicy: 'Never' }));
    const missing = await waitForStatus(env, 'missing', finished);
    t.match(missing, {
      phase: 'Failed',
      reason: 'ModuleRefused',
      message: /^container "main": fetching invoice example\.com\/nothing-here\/1\.0\.0: .*not found/,
      containerStatuses: [{ state: { waiting: { reason: 'ErrImagePull', message: /^bindle:example\.com\/nothing-here\/1\.0\.0: .*not found/ } } }],
    });
    const never = await waitForStatus(env, 'never', finished);
    t.match(never, { phase: 'Failed', containerStatuses: [{ state: { waiting: { reason: 'ErrImageNeverPull', message: /imagePullPolicy is Never/ } } }] });
    const yanked = await waitForStatus(env, 'yanked', finished);
    t.match(yanked, { phase: 'Failed', reason: 'ModuleRefused', message: /has been yanked/ });
    t.notOk(existsSync(join(env.state, 'pods', 'yanked', 'main.log')), 'nothing ran');

    dropManifest(env, 'yanked-ok.yaml', podYaml('yanked-ok', 'bindle:example.com/yanked/1.0.0', {
      restartPolicy: 'Never',
      annotations: { 'bindle.dev/allow-yanked': 'true' },
    }));
    t.match(await waitForStatus(env, 'yanked-ok', finished), { phase: 'Succeeded' }, 'the annotation allows a yanked bindle');
  });

  t.test('a server that cannot be reached leaves the pod Pending, retrying', async (t) => {
    const env = await startKubelet(t, 'http://127.0.0.1:1/v1/');
    dropManifest(env, 'offline.yaml', podYaml('offline', 'bindle:example.com/hello/1.0.0'));
    const status = await waitForStatus(env, 'offline', (s) => s.containerStatuses[0]?.state !== undefined && 'waiting' in s.containerStatuses[0].state && s.containerStatuses[0].state.waiting.reason === 'ImagePullBackOff');
    t.equal(status.phase, 'Pending');
    t.match(status.containerStatuses[0]?.state, { waiting: { message: /127\.0\.0\.1:1/ } });
  });

  t.test('pods stop when their manifest is removed, and when the kubelet stops', async (t) => {
    const env = await startKubelet(t, url);
    dropManifest(env, 'spin.yaml', podYaml('spin', 'bindle:example.com/spin/1.0.0'));
    dropManifest(env, 'spin2.yaml', podYaml('spin2', 'bindle:example.com/spin/1.0.0'));
    await waitForStatus(env, 'spin', (s) => s.phase === 'Running');
    await waitForStatus(env, 'spin2', (s) => s.phase === 'Running');
    // Running means the worker started; wait until both modules are really spinning.
    for (let i = 0; i < 800 && !(existsLog(env, 'spin') && existsLog(env, 'spin2')); i++) await new Promise((r) => setTimeout(r, 25));
    t.match(readStatus(env, 'spin'), { containerStatuses: [{ started: true, state: { running: {} } }] });
    rmSync(join(env.manifests, 'spin.yaml'));
    const removed = await waitForStatus(env, 'spin', (s) => s.reason === 'Deleted');
    t.match(removed, {
      phase: 'Failed',
      message: 'the manifest was removed',
      containerStatuses: [{ state: { terminated: { exitCode: 137, reason: 'Killed', message: 'killed: the manifest was removed' } } }],
    });
    await env.kubelet.stop();
    t.match(readStatus(env, 'spin2'), { reason: 'KubeletStopped', containerStatuses: [{ state: { terminated: { exitCode: 137, reason: 'Killed' } } }] });
    t.equal(podLog(env, 'spin2'), 'spinning\n');
  });

  t.test('env from the pod\'s own fields', async (t) => {
    const env = await startKubelet(t, url);
    const lines = ['      env:', '        - { name: POD, valueFrom: { fieldRef: { fieldPath: metadata.name } } }', '        - { name: NS, valueFrom: { fieldRef: { fieldPath: metadata.namespace } } }', '        - { name: UID, valueFrom: { fieldRef: { fieldPath: metadata.uid } } }'];
    dropManifest(env, 'echo.yaml', podYaml('echo', 'bindle:example.com/echo/1.0.0', { restartPolicy: 'Never', containerLines: lines }));
    await waitForStatus(env, 'echo', finished);
    const uid = /env UID=(\S+)/.exec(podLog(env, 'echo'))?.[1];
    t.match(uid, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    t.equal(podLog(env, 'echo'), `arg echo.wasm\nenv POD=echo\nenv NS=default\nenv UID=${uid ?? ''}\n`);
  });

  t.test('$(VAR) in command and args expands from the container env', async (t) => {
    const env = await startKubelet(t, url);
    const lines = [
      '      command: ["echo.wasm", "$(GREETING)"]',
      '      env:',
      '        - { name: GREETING, value: hi }',
      '        - { name: POD, valueFrom: { fieldRef: { fieldPath: metadata.name } } }',
    ];
    dropManifest(env, 'vars.yaml', podYaml('vars', 'bindle:example.com/echo/1.0.0', { restartPolicy: 'Never', containerLines: lines, args: ['$(POD)-$(GREETING)', '$$(GREETING)', '$(UNSET)'] }));
    t.match(await waitForStatus(env, 'vars', finished), { phase: 'Succeeded' });
    t.equal(podLog(env, 'vars'), 'arg echo.wasm\narg hi\narg vars-hi\narg $(GREETING)\narg $(UNSET)\nenv GREETING=hi\nenv POD=vars\n');
  });

  t.test('activeDeadlineSeconds ends a pod that runs too long', async (t) => {
    const env = await startKubelet(t, url);
    dropManifest(env, 'slow.yaml', podYaml('slow', 'bindle:example.com/spin/1.0.0', { activeDeadlineSeconds: 1 }));
    const status = await waitForStatus(env, 'slow', finished);
    t.match(status, {
      phase: 'Failed',
      reason: 'DeadlineExceeded',
      message: 'the pod was active longer than its activeDeadlineSeconds (1 s)',
      containerStatuses: [{ restartCount: 0, state: { terminated: { exitCode: 137, reason: 'Killed', message: /activeDeadlineSeconds/ } } }],
    });
    dropManifest(env, 'quick.yaml', podYaml('quick', 'bindle:example.com/hello/1.0.0', { activeDeadlineSeconds: 600, restartPolicy: 'Never' }));
    t.match(await waitForStatus(env, 'quick', finished), { phase: 'Succeeded' }, 'a pod within its deadline is not touched');
    t.notOk(readStatus(env, 'quick')?.reason);
  });

  const { runtime, log: runtimeLog } = await moduleRuntime();
  const noCgroups = runtime.cgroups.kind === 'none' && process.env.CI !== 'true' ? `no writable cgroups here: ${runtimeLog.join('; ')}` : false;
  t.test('a pod over its memory limit is OOMKilled; the others keep running', { skip: noCgroups }, async (t) => {
    const env = await startKubelet(t, url);
    dropManifest(env, 'neighbour.yaml', podYaml('neighbour', 'bindle:example.com/spin/1.0.0', { limits: { cpu: '100m' } }));
    for (let i = 0; i < 800 && !existsLog(env, 'neighbour'); i++) await new Promise((r) => setTimeout(r, 25));
    dropManifest(env, 'hungry.yaml', podYaml('hungry', 'bindle:example.com/grow/1.0.0', { restartPolicy: 'Never', limits: { memory: '64Mi' } }));
    const hungry = await waitForStatus(env, 'hungry', finished);
    t.match(hungry, {
      phase: 'Failed',
      containerStatuses: [{ state: { terminated: { exitCode: 137, reason: 'OOMKilled', message: /memory limit \(67108864 bytes\)/ } } }],
    });
    t.equal(podLog(env, 'hungry'), '', 'it never got to 256 MiB');
    t.match(readStatus(env, 'neighbour'), { phase: 'Running', containerStatuses: [{ restartCount: 0, state: { running: {} } }] }, 'the other pod keeps running');
    dropManifest(env, 'roomy.yaml', podYaml('roomy', 'bindle:example.com/grow/1.0.0', { restartPolicy: 'Never', limits: { memory: '512Mi' } }));
    t.match(await waitForStatus(env, 'roomy', finished), { phase: 'Succeeded' }, 'the same module fits in 512 MiB');
    t.equal(podLog(env, 'roomy'), 'grew 256 MiB\n');
    t.match(readStatus(env, 'neighbour'), { phase: 'Running', containerStatuses: [{ restartCount: 0, state: { running: {} } }] }, 'and the spinning pod is still running');
    t.match(env.kubelet.statuses().get('neighbour'), { phase: 'Running' }, 'the kubelet answers throughout');
  });

  t.test('changed and invalid manifests', async (t) => {
    const env = await startKubelet(t, url);
    dropManifest(env, 'p.yaml', podYaml('p', 'bindle:example.com/spin/1.0.0'));
    await waitForStatus(env, 'p', (s) => s.phase === 'Running');
    dropManifest(env, 'p.yaml', podYaml('p', 'bindle:example.com/hello/1.0.0', { restartPolicy: 'Never' }));
    const replaced = await waitForStatus(env, 'p', (s) => s.phase === 'Succeeded');
    t.equal(replaced.containerStatuses[0]?.imageID, 'example.com/hello/1.0.0', 'the new manifest replaced the pod');
    t.match(env.log.join('\n'), /pod p: manifest .*p\.yaml changed; replacing the pod/);
    dropManifest(env, 'dup.yaml', podYaml('p', 'bindle:example.com/hello/1.0.0'));
    dropManifest(env, 'broken.yaml', 'apiVersion: v1\nkind: Service\n');
    for (let i = 0; i < 400 && !env.log.some((l) => l.includes('broken.yaml')); i++) await new Promise((r) => setTimeout(r, 25));
    for (let i = 0; i < 400 && !env.log.some((l) => l.includes('dup.yaml')); i++) await new Promise((r) => setTimeout(r, 25));
    t.match(env.log.join('\n'), /ignoring .*broken\.yaml: pod manifest .*broken\.yaml: kind must be "Pod" \(found "Service"\)/);
    t.match(env.log.join('\n'), /ignoring .*dup\.yaml: pod p is already defined by .*p\.yaml/);
    await env.kubelet.sync();
    await env.kubelet.sync();
    t.equal(env.log.filter((l) => l.includes('broken.yaml')).length, 1, 'reported once');
    t.same(readdirSync(join(env.state, 'pods')).sort(), ['p']);
  });
});

t.test('a pod picks alternatives and an optional group with annotations', async (t) => {
  const { url } = await listeningApp(t);
  const en = { name: 'greeting-en.txt', data: Buffer.from('hello\n') };
  const fr = { name: 'greeting-fr.txt', data: Buffer.from('bonjour\n') };
  const extra = { name: 'extras/extra.txt', data: Buffer.from('extra\n') };
  const app = wasmParcel('cat.wasm', await wasm('cat'));
  const pub = publisher(t, url);
  const labelOf = (p: TestParcel): Label => ({ sha256: sha256(p.data), mediaType: p.mediaType ?? 'text/plain', name: p.name, size: p.data.length });
  const invoice = signedInvoice('example.com/greeter', '1.0.0', [], {
    extra: {
      group: [
        { name: 'lang', required: true, satisfiedBy: 'oneOf' },
        { name: 'extras', satisfiedBy: 'optional' },
      ],
      parcel: [
        { label: labelOf(app) },
        { label: labelOf(en), conditions: { memberOf: ['lang'] } },
        { label: labelOf(fr), conditions: { memberOf: ['lang'] } },
        { label: labelOf(extra), conditions: { memberOf: ['extras'] } },
      ],
    },
  });
  await pub.createInvoice(invoice);
  for (const p of [app, en, fr, extra]) await pub.createParcel('example.com/greeter/1.0.0', labelOf(p), p.data);
  const env = await startKubelet(t, url);
  dropManifest(env, 'default.yaml', podYaml('default', 'bindle:example.com/greeter/1.0.0', { restartPolicy: 'Never', args: ['greeting-en.txt'] }));
  dropManifest(env, 'french.yaml', podYaml('french', 'bindle:example.com/greeter/1.0.0', {
    restartPolicy: 'Never',
    args: ['greeting-fr.txt'],
    annotations: { 'bindle.dev/choose': 'lang=greeting-fr.txt', 'bindle.dev/groups': 'extras' },
  }));
  t.match(await waitForStatus(env, 'default', finished), { phase: 'Succeeded' });
  t.match(await waitForStatus(env, 'french', finished), { phase: 'Succeeded' });
  t.equal(podLog(env, 'default'), 'hello\n');
  t.equal(podLog(env, 'french'), 'bonjour\n');
  t.same(readdirSync(join(env.state, 'pods', 'default', 'main.data')).sort(), ['greeting-en.txt']);
  t.same(readdirSync(join(env.state, 'pods', 'french', 'main.data')).sort(), ['extras', 'greeting-fr.txt'], 'the chosen alternative and the optional group');
});

t.test("a container whose output passes the log's size is rotated: <container>.log.1 holds the earlier part", async (t) => {
  const { url } = await listeningApp(t);
  const line = `${'x'.repeat(99)}\n`;
  const big = { name: 'big.txt', data: Buffer.from(line.repeat(Math.ceil((MAX_LOG_BYTES * 1.2) / line.length))) };
  await pushBindle(publisher(t, url), 'example.com/chatty', '1.0.0', [wasmParcel('cat.wasm', await wasm('cat')), big]);
  const env = await startKubelet(t, url);
  dropManifest(env, 'chatty.yaml', podYaml('chatty', 'bindle:example.com/chatty/1.0.0', { restartPolicy: 'Never', args: ['big.txt'] }));
  t.match(await waitForStatus(env, 'chatty', finished), { phase: 'Succeeded' });
  const current = join(env.state, 'pods', 'chatty', 'main.log');
  const rotated = `${current}.1`;
  t.ok(statSync(rotated).size <= MAX_LOG_BYTES, 'the rotated file is within the size');
  t.ok(statSync(current).size <= MAX_LOG_BYTES, 'so is the current one');
  const text = podLogText(readFileSync(rotated, 'utf8')) + podLogText(readFileSync(current, 'utf8'));
  t.equal(text.length, big.data.length, 'together they hold every line, in order');
  t.ok(text === big.data.toString('utf8'));
});
