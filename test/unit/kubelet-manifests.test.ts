/**
 * The kubelet's inputs: module references (`bindle:name/version`, `bindle:name@range`), Pod
 * manifests (validation with precise messages; limits, deadline, env fieldRefs, the static
 * pod UID), resource quantities, the bindle.dev/* annotations turned into a
 * module request, default pull policies, and reading a manifest directory.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMovingRef, parseModuleRef } from '../../client/kubelet/module-ref.js';
import {
  containerModuleRequest,
  parsePodManifest,
  parseQuantity,
  pullPolicyOf,
  readManifestDir,
  splitAnnotationList,
  type PodSpec,
} from '../../client/kubelet/pod-manifests.js';

t.test('module references', async (t) => {
  t.same(parseModuleRef('bindle:example.com/hello/1.0.0'), {
    kind: 'exact',
    text: 'bindle:example.com/hello/1.0.0',
    id: { name: 'example.com/hello', version: '1.0.0' },
  });
  t.same(parseModuleRef('bindle:example.com/hello@^1.0.0'), {
    kind: 'range',
    text: 'bindle:example.com/hello@^1.0.0',
    name: 'example.com/hello',
    range: '^1.0.0',
  });
  t.match(parseModuleRef('bindle:hello@>=1.2.0 <2'), { kind: 'range', range: '>=1.2.0 <2' });
  t.same(parseModuleRef('127.0.0.1:5000/example.com/app:1.0.0_b1'), {
    kind: 'oci',
    text: '127.0.0.1:5000/example.com/app:1.0.0_b1',
    registry: '127.0.0.1:5000',
    repository: 'example.com/app',
    reference: '1.0.0_b1',
  });
  t.match(parseModuleRef('ghcr.io/example/hello'), { kind: 'oci', registry: 'ghcr.io', repository: 'example/hello', reference: 'latest' });
  const digest = `sha256:${'a'.repeat(64)}`;
  t.match(parseModuleRef(`localhost/hello:1@${digest}`), { kind: 'oci', registry: 'localhost', repository: 'hello', reference: digest });
  t.ok(isMovingRef(parseModuleRef('ghcr.io/example/hello:1')), 'an image by tag moves');
  t.notOk(isMovingRef(parseModuleRef(`ghcr.io/example/hello@${digest}`)), 'an image by digest does not');
  const bad: Array<[string, RegExp]> = [
    ['nginx:latest', /name the registry/],
    ['ghcr.io/Example/App:1', /not an OCI repository name/],
    ['ghcr.io/example/app@sha256:abc', /not a sha256/],
    ['bindle://example.com/hello/1.0.0', /no "\/\/"/],
    ['bindle:example.com/hello', /invalid bindle version "hello"|expected <name>\/<version>/],
    ['bindle:example.com/hello/v1.0.0', /strict SemVer/],
    ['bindle:../x/1.0.0', /"\.\." path segment/],
    ['bindle:example.com/hello@', /empty version range/],
    ['bindle:example.com/hello@not a range!', /not a valid SemVer range/],
  ];
  for (const [text, message] of bad) {
    t.throws(() => parseModuleRef(text), { code: 'invalid_id', message }, text);
  }
});

const MINIMAL = `
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  containers:
    - name: main
      image: bindle:example.com/hello/1.0.0
`;

t.test('a minimal manifest gets the Kubernetes defaults', async (t) => {
  const pod = parsePodManifest(MINIMAL, 'hello.yaml');
  t.match(pod.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a static pod UID from the manifest bytes');
  t.equal(parsePodManifest(MINIMAL, 'other.yaml').uid, pod.uid, 'the same manifest keeps its UID');
  t.not(parsePodManifest(`${MINIMAL}\n`, 'hello.yaml').uid, pod.uid, 'a changed manifest is a new pod');
  t.same(pod, {
    name: 'hello',
    namespace: 'default',
    uid: pod.uid,
    activeDeadlineSeconds: undefined,
    annotations: {},
    restartPolicy: 'Always',
    containers: [{ name: 'main', image: 'bindle:example.com/hello/1.0.0', command: [], args: [], env: [], imagePullPolicy: undefined, limits: {} }],
  });
  const container = pod.containers[0];
  if (container === undefined) throw new Error('no container');
  t.equal(pullPolicyOf(container), 'IfNotPresent', 'an exact version defaults to IfNotPresent');
  t.equal(pullPolicyOf({ ...container, image: 'bindle:example.com/hello@^1' }), 'Always', 'a range is a moving tag: Always');
  t.equal(pullPolicyOf({ ...container, imagePullPolicy: 'Never' }), 'Never');
  t.same(containerModuleRequest(pod, container), {}, 'no annotations, no request');
});

t.test('JSON manifests, args, env, command and annotations', async (t) => {
  const manifest = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'weather.app',
      namespace: 'apps',
      uid: '6e0c6a5e-2f4b-4c44-9a55-0d7f4e1e9c01',
      labels: { tier: 'edge' },
      annotations: {
        'bindle.dev/allow-yanked': 'true',
        'bindle.dev/allow-unsigned-images': 'false',
        'bindle.dev/groups': 'extras, debug',
        'bindle.dev/features': 'wasm.ui_kit = "none, really", lang.code=fr',
        'bindle.dev/choose': 'almanac=lite.wasm',
        'bindle.dev/groups.sidecar': 'sidecar-only',
        'bindle.dev/module.sidecar': 'side.wasm',
        'unrelated.example/x': 'ignored',
      },
    },
    spec: {
      restartPolicy: 'OnFailure',
      activeDeadlineSeconds: 30,
      containers: [
        {
          name: 'main',
          image: 'bindle:example.com/weather/1.0.0',
          imagePullPolicy: 'Always',
          command: ['weather.wasm', '--zip'],
          args: ['80907'],
          env: [
            { name: 'A', value: '1' },
            { name: 'EMPTY' },
            { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'UID', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.uid' } } },
            { name: 'TIER', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
            { name: 'GROUPS', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['bindle.dev/groups']" } } },
          ],
          resources: { limits: { memory: '64Mi', cpu: '100m' }, requests: { memory: '1Gi' } },
        },
        { name: 'sidecar', image: 'bindle:example.com/weather@~1.0', resources: { limits: { memory: 1048576, cpu: 0.5 } } },
      ],
    },
  };
  const pod = parsePodManifest(JSON.stringify(manifest), 'weather.json');
  t.equal(pod.restartPolicy, 'OnFailure');
  const [main, sidecar] = pod.containers;
  if (main === undefined || sidecar === undefined) throw new Error('containers missing');
  t.same(main.env, [
    { name: 'A', value: '1' },
    { name: 'EMPTY', value: '' },
    { name: 'POD', value: 'weather.app' },
    { name: 'NS', value: 'apps' },
    { name: 'UID', value: '6e0c6a5e-2f4b-4c44-9a55-0d7f4e1e9c01' },
    { name: 'TIER', value: 'edge' },
    { name: 'GROUPS', value: 'extras, debug' },
  ], 'valueFrom.fieldRef resolves the pod\'s own fields');
  t.equal(pod.activeDeadlineSeconds, 30);
  const refs = parsePodManifest(JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'refs' },
    spec: {
      containers: [{
        name: 'c', image: 'bindle:example.com/weather/1.0.0',
        env: [
          { name: 'LATER', value: '$(HOST)' },
          { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'HOST', value: '$(POD).local' },
          { name: 'URL', value: 'http://$(HOST):$(PORT)/$$(HOST) $(__proto__)' },
          { name: 'HOST', value: 'again-$(HOST)' },
        ],
      }],
    },
  }), 'refs.json');
  t.same(refs.containers[0]?.env, [
    { name: 'LATER', value: '$(HOST)' },
    { name: 'POD', value: 'refs' },
    { name: 'HOST', value: 'refs.local' },
    { name: 'URL', value: 'http://refs.local:$(PORT)/$(HOST) $(__proto__)' },
    { name: 'HOST', value: 'again-refs.local' },
  ], 'an env value expands $(VAR) from the entries before it (a valueFrom one too), as Kubernetes does');
  t.same(main.limits, { memoryBytes: 64 * 2 ** 20, cpu: 0.1 }, 'limits in Kubernetes quantities; requests ignored');
  t.same(sidecar.limits, { memoryBytes: 1048576, cpu: 0.5 }, 'plain YAML numbers too');
  t.same(main.command, ['weather.wasm', '--zip']);
  t.same(main.args, ['80907']);
  t.same(containerModuleRequest(pod, main), {
    allowYanked: true,
    allowUnsigned: false,
    groups: ['extras', 'debug'],
    features: [
      { section: 'wasm', name: 'ui_kit', value: 'none, really' },
      { section: 'lang', name: 'code', value: 'fr' },
    ],
    choices: { almanac: 'lite.wasm' },
    module: 'weather.wasm',
  }, 'command[0] names the module; quoted values keep their commas');
  t.same(containerModuleRequest(pod, sidecar), {
    allowYanked: true,
    allowUnsigned: false,
    groups: ['sidecar-only'],
    features: [
      { section: 'wasm', name: 'ui_kit', value: 'none, really' },
      { section: 'lang', name: 'code', value: 'fr' },
    ],
    choices: { almanac: 'lite.wasm' },
    module: 'side.wasm',
  }, 'per-container annotations override the pod-wide ones');
});

t.test('invalid manifests are refused with the field and the reason', async (t) => {
  const pod = (spec: string, meta = 'name: p'): string => `apiVersion: v1\nkind: Pod\nmetadata:\n  ${meta}\nspec:\n${spec}`;
  const one = (container: string): string => pod(`  containers:\n    - name: c\n${container}`);
  const cases: Array<[string, string, string, RegExp]> = [
    ['syntax', 'apiVersion: v1\nkind: [Pod', 'malformed_body', /not valid YAML or JSON/],
    ['two documents', `${MINIMAL}\n---\n${MINIMAL}`, 'bad_request', /exactly one Pod document, found 2/],
    ['kind', MINIMAL.replace('kind: Pod', 'kind: Deployment'), 'bad_request', /kind must be "Pod" \(found "Deployment"\)/],
    ['apiVersion', MINIMAL.replace('apiVersion: v1', 'apiVersion: apps/v1'), 'bad_request', /apiVersion must be "v1"/],
    ['pod name', pod('  containers: []', 'name: Hello_World'), 'bad_request', /metadata\.name "Hello_World" must be a DNS-1123 subdomain/],
    ['no containers', pod('  containers: []'), 'bad_request', /at least one container/],
    ['restartPolicy', pod('  restartPolicy: Sometimes\n  containers: []'), 'bad_request', /restartPolicy must be one of Always, OnFailure, Never/],
    ['container name', pod('  containers:\n    - name: My.Container\n      image: bindle:a/1.0.0'), 'bad_request', /DNS-1123 label/],
    ['duplicate names', pod('  containers:\n    - name: c\n      image: bindle:a/1.0.0\n    - name: c\n      image: bindle:a/1.0.0'), 'bad_request', /two containers are named "c"/],
    ['no image', one('      args: []'), 'bad_request', /container "c": image is missing/],
    ['image without a registry', one('      image: nginx:1.25'), 'bad_request', /container "c": invalid module reference "nginx:1\.25": name the registry/],
    ['pull policy', one('      image: bindle:a/1.0.0\n      imagePullPolicy: Sometimes'), 'bad_request', /imagePullPolicy must be one of Always, IfNotPresent, Never/],
    ['args', one('      image: bindle:a/1.0.0\n      args: [1, 2]'), 'bad_request', /args must be a list of strings/],
    ['valueFrom', one('      image: bindle:a/1.0.0\n      env:\n        - name: X\n          valueFrom: {}'), 'bad_request', /env X: valueFrom supports only fieldRef/],
    ['secretKeyRef', one('      image: bindle:a/1.0.0\n      env:\n        - name: X\n          valueFrom: { secretKeyRef: { name: s, key: k } }'), 'bad_request', /env X: valueFrom supports only fieldRef/],
    ['fieldPath', one('      image: bindle:a/1.0.0\n      env:\n        - name: X\n          valueFrom: { fieldRef: { fieldPath: status.podIP } }'), 'bad_request', /env X: valueFrom\.fieldRef\.fieldPath "status\.podIP" is not supported/],
    ['value and valueFrom', one('      image: bindle:a/1.0.0\n      env:\n        - name: X\n          value: "1"\n          valueFrom: { fieldRef: { fieldPath: metadata.name } }'), 'bad_request', /env X: give value or valueFrom, not both/],
    ['memory limit', one('      image: bindle:a/1.0.0\n      resources: { limits: { memory: 64MB } }'), 'bad_request', /resources\.limits\.memory "64MB" is not a memory quantity/],
    ['cpu limit', one('      image: bindle:a/1.0.0\n      resources: { limits: { cpu: "-1" } }'), 'bad_request', /resources\.limits\.cpu "-1" is not a CPU quantity/],
    ['deadline', pod('  activeDeadlineSeconds: 0\n  containers: []'), 'bad_request', /activeDeadlineSeconds must be a whole number of seconds, at least 1/],
    ['namespace', pod('  containers: []', 'name: p\n  namespace: Not_A_Label'), 'bad_request', /metadata\.namespace "Not_A_Label" must be a DNS-1123 label/],
    ['unquoted annotation', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/allow-yanked: true'), 'bad_request', /annotation bindle\.dev\/allow-yanked must be a string \(quote it/],
    ['bad allow-unsigned-images', pod(`  containers:\n    - name: c\n      image: ghcr.io/a/b:1`, 'name: p\n  annotations:\n    bindle.dev/allow-unsigned-images: "1"'), 'bad_request', /bindle\.dev\/allow-unsigned-images: expected "true" or "false"/],
    ['bad allow-yanked', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/allow-yanked: "yes"'), 'bad_request', /bindle\.dev\/allow-yanked: expected "true" or "false"/],
    ['bad feature', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/features: "wasm"'), 'bad_request', /annotation bindle\.dev\/features: invalid feature filter "wasm"/],
    ['bad choice', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/choose: "almanac"'), 'bad_request', /bindle\.dev\/choose: expected group=parcel-name/],
  ];
  for (const [what, text, code, message] of cases) {
    t.throws(() => parsePodManifest(text, 'pods/p.yaml'), { code, message }, what);
  }
  t.throws(() => parsePodManifest(one('      image: nginx'), 'pods/p.yaml'), { message: /^pod manifest pods\/p\.yaml: / }, 'messages name the file');
});

t.test('resource quantities', async (t) => {
  const cases: Array<[unknown, number | undefined]> = [
    ['64Mi', 64 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['128M', 128e6],
    ['1.5Ki', 1536],
    ['100m', 0.1],
    ['0.1', 0.1],
    ['2', 2],
    ['1e3', 1000],
    ['5E-1', 0.5],
    [0.25, 0.25],
    ['64MB', undefined],
    ['-1', undefined],
    ['', undefined],
    ['Mi', undefined],
    [true, undefined],
  ];
  for (const [value, expected] of cases) t.equal(parseQuantity(value), expected, JSON.stringify(value));
});

t.test('annotation lists', async (t) => {
  t.same(splitAnnotationList(' a, b ,,c\nd '), ['a', 'b', 'c', 'd']);
  t.same(splitAnnotationList('x.y="1,2", z.w=3'), ['x.y="1,2"', 'z.w=3']);
  t.same(splitAnnotationList(''), []);
});

t.test('reading a manifest directory', async (t) => {
  const dir = t.testdir({
    'a.yaml': MINIMAL,
    'b.json': '{}',
    'c.yml': MINIMAL,
    '.hidden.yaml': MINIMAL,
    'notes.txt': 'not a manifest',
    sub: { 'd.yaml': MINIMAL },
  });
  const files = await readManifestDir(dir);
  t.same(files.map((f) => f.path), [join(dir, 'a.yaml'), join(dir, 'b.json'), join(dir, 'c.yml')]);
  t.equal(files[0]?.digest, files[2]?.digest, 'the digest is of the content');
  writeFileSync(join(dir, 'a.yaml'), `${MINIMAL}\n# changed\n`);
  t.not((await readManifestDir(dir))[0]?.digest, files[0]?.digest, 'a changed file has a new digest');
  t.same(await readManifestDir(join(dir, 'missing')), [], 'a missing directory reads as empty');
  const pod: PodSpec = parsePodManifest(MINIMAL, 'x');
  t.equal(pod.name, 'hello');
});
