/**
 * The kubelet's inputs: module references (`bindle:name/version`, `bindle:name@range`), Pod
 * manifests (validation with precise messages), the bindle.dev/* annotations turned into a
 * module request, default pull policies, and reading a manifest directory.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModuleRef } from '../../client/kubelet/module-ref.js';
import {
  containerModuleRequest,
  parsePodManifest,
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
  const bad: Array<[string, RegExp]> = [
    ['docker.io/library/nginx:latest', /only bindles can run here/],
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
  t.same(pod, {
    name: 'hello',
    annotations: {},
    restartPolicy: 'Always',
    containers: [{ name: 'main', image: 'bindle:example.com/hello/1.0.0', command: [], args: [], env: [], imagePullPolicy: undefined }],
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
      annotations: {
        'bindle.dev/allow-yanked': 'true',
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
      containers: [
        {
          name: 'main',
          image: 'bindle:example.com/weather/1.0.0',
          imagePullPolicy: 'Always',
          command: ['weather.wasm', '--zip'],
          args: ['80907'],
          env: [{ name: 'A', value: '1' }, { name: 'EMPTY' }],
          resources: { limits: { memory: '64Mi' } },
        },
        { name: 'sidecar', image: 'bindle:example.com/weather@~1.0' },
      ],
    },
  };
  const pod = parsePodManifest(JSON.stringify(manifest), 'weather.json');
  t.equal(pod.restartPolicy, 'OnFailure');
  const [main, sidecar] = pod.containers;
  if (main === undefined || sidecar === undefined) throw new Error('containers missing');
  t.same(main.env, [{ name: 'A', value: '1' }, { name: 'EMPTY', value: '' }]);
  t.same(main.command, ['weather.wasm', '--zip']);
  t.same(main.args, ['80907']);
  t.same(containerModuleRequest(pod, main), {
    allowYanked: true,
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
    ['OCI image', one('      image: nginx:1.25'), 'bad_request', /container "c": invalid module reference "nginx:1\.25": only bindles/],
    ['pull policy', one('      image: bindle:a/1.0.0\n      imagePullPolicy: Sometimes'), 'bad_request', /imagePullPolicy must be one of Always, IfNotPresent, Never/],
    ['args', one('      image: bindle:a/1.0.0\n      args: [1, 2]'), 'bad_request', /args must be a list of strings/],
    ['valueFrom', one('      image: bindle:a/1.0.0\n      env:\n        - name: X\n          valueFrom: {}'), 'bad_request', /env X: valueFrom is not supported/],
    ['unquoted annotation', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/allow-yanked: true'), 'bad_request', /annotation bindle\.dev\/allow-yanked must be a string \(quote it/],
    ['bad allow-yanked', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/allow-yanked: "yes"'), 'bad_request', /bindle\.dev\/allow-yanked: expected "true" or "false"/],
    ['bad feature', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/features: "wasm"'), 'bad_request', /annotation bindle\.dev\/features: invalid feature filter "wasm"/],
    ['bad choice', pod(`  containers:\n    - name: c\n      image: bindle:a/1.0.0`, 'name: p\n  annotations:\n    bindle.dev/choose: "almanac"'), 'bad_request', /bindle\.dev\/choose: expected group=parcel-name/],
  ];
  for (const [what, text, code, message] of cases) {
    t.throws(() => parsePodManifest(text, 'pods/p.yaml'), { code, message }, what);
  }
  t.throws(() => parsePodManifest(one('      image: nginx'), 'pods/p.yaml'), { message: /^pod manifest pods\/p\.yaml: / }, 'messages name the file');
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
