/**
 * The module store against a real server (in-process app on real storage, over HTTP): the
 * content-addressed cache, pull policies, verification refusals with precise messages
 * (unknown creator key, tampered signature, wrong parcel bytes, yanked, no wasm module),
 * selection (oneOf alternatives, an optional group, feature filters) and range references.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Invoice, Label } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import { Keyring } from '../../core/signing/keyring.js';
import { BindleClient } from '../../client/lib/index.js';
import { ModuleStore } from '../../client/kubelet/module-store.js';
import { parsePodManifest, type ContainerSpec } from '../../client/kubelet/pod-manifests.js';
import { serveLocally } from '../helpers/local-server.js';
import { creatorKeyring, sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { listeningApp, moduleStore, publisher, pushBindle, wasm, wasmParcel } from '../helpers/kubelet-env.js';
import { storeInvoiceDirect } from '../helpers/test-app.js';

const message = { name: 'message.txt', data: Buffer.from('a file parcel\n') };

function cached(cacheDir: string, kind: 'parcels' | 'invoices'): string[] {
  const dir = join(cacheDir, kind);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

t.test('fetches, verifies and caches by content; nothing is fetched twice', async (t) => {
  const { url } = await listeningApp(t);
  const hello = await wasm('hello');
  await pushBindle(publisher(t, url), 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', hello), message]);
  const { store, cacheDir, logs } = moduleStore(t, url);

  const first = await store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent');
  t.equal(first.id, 'example.com/hello/1.0.0');
  t.equal(first.entry.label.name, 'hello.wasm');
  t.equal(first.entry.path, join(cacheDir, 'parcels', sha256(hello)));
  t.same(first.files.map((f) => [f.label.name, f.path]), [['message.txt', join(cacheDir, 'parcels', sha256(message.data))]]);
  t.same([first.fetched, first.cached], [2, 0]);
  t.same(cached(cacheDir, 'parcels'), [sha256(hello), sha256(message.data)].sort(), 'parcels are named by their sha256');
  t.equal(statSync(first.entry.path).mode & 0o777, 0o444, 'cached parcels are read-only');
  t.same(cached(cacheDir, 'invoices'), [`${canonicalId({ name: 'example.com/hello', version: '1.0.0' })}.toml`]);

  const again = await store.get('bindle:example.com/hello/1.0.0', 'Always');
  t.same([again.fetched, again.cached], [0, 2], 'Always fetches the invoice again but never a cached parcel');
  t.match(logs.join('\n'), /fetched 2 parcels, 0 from the cache[\s\S]*fetched 0 parcels, 2 from the cache/);

  const other = moduleStore(t, url);
  const both = await Promise.all([
    other.store.get('bindle:example.com/hello/1.0.0', 'Always'),
    other.store.get('bindle:example.com/hello/1.0.0', 'Always'),
  ]);
  t.equal(both[0].fetched + both[1].fetched, 2, 'concurrent gets share one download per parcel');
});

t.test('pull policies', async (t) => {
  const { url } = await listeningApp(t);
  await pushBindle(publisher(t, url), 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', await wasm('hello'))]);
  const online = moduleStore(t, url);
  await t.rejects(online.store.get('bindle:example.com/hello/1.0.0', 'Never'), {
    code: 'not_found',
    message: `bindle example.com/hello/1.0.0 is not in the module cache (${online.cacheDir}) and imagePullPolicy is Never`,
  });
  await t.rejects(online.store.get('bindle:example.com/hello@^1', 'Never'), {
    code: 'not_found',
    message: /no cached, non-yanked version of example\.com\/hello satisfies "\^1" \(imagePullPolicy Never: the server was not asked\)/,
  });
  t.same(cached(online.cacheDir, 'parcels'), [], 'Never fetched nothing');
  await online.store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent');

  // The same cache, but the server is unreachable (nothing listens on port 1).
  const offline = moduleStore(t, 'http://127.0.0.1:1/v1/', { cacheDir: online.cacheDir });
  const fromCache = await offline.store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent');
  t.same([fromCache.fetched, fromCache.cached], [0, 1], 'IfNotPresent uses the complete cache entry without the server');
  t.equal((await offline.store.get('bindle:example.com/hello/1.0.0', 'Never')).id, 'example.com/hello/1.0.0');
  t.equal((await offline.store.get('bindle:example.com/hello@^1.0.0', 'Never')).id, 'example.com/hello/1.0.0', 'Never resolves a range in the cache');
  await t.rejects(offline.store.get('bindle:example.com/hello/1.0.0', 'Always'), { code: 'unavailable' }, 'Always needs the server');
});

t.test('a corrupt cached parcel is removed and fetched again, or refused under Never', async (t) => {
  const { url } = await listeningApp(t);
  const hello = await wasm('hello');
  await pushBindle(publisher(t, url), 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', hello)]);
  const { store, cacheDir, logs } = moduleStore(t, url);
  const first = await store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent');
  const corrupt = (): void => {
    chmodSync(first.entry.path, 0o644);
    writeFileSync(first.entry.path, Buffer.alloc(hello.length, 0));
  };
  corrupt();
  await t.rejects(store.get('bindle:example.com/hello/1.0.0', 'Never'), {
    code: 'not_found',
    message:
      `the cached copy of parcel ${sha256(hello)} (hello.wasm) of example.com/hello/1.0.0 in the module cache (${cacheDir}) was corrupt and has been removed ` +
      `(parcel ${sha256(hello)} (hello.wasm) at ${first.entry.path}: the data has sha256 ${sha256(Buffer.alloc(hello.length, 0))}, but its label says ${sha256(hello)}), ` +
      'and imagePullPolicy is Never',
  });
  await t.rejects(store.get('bindle:example.com/hello/1.0.0', 'Never'), {
    code: 'not_found',
    message: `parcel ${sha256(hello)} (hello.wasm) of example.com/hello/1.0.0 is not in the module cache (${cacheDir}) and imagePullPolicy is Never`,
  }, 'once removed, it is missing');
  t.match(
    logs.join('\n'),
    `removing corrupt cached parcel: parcel ${sha256(hello)} (hello.wasm) at ${first.entry.path}: the data has sha256 ${sha256(Buffer.alloc(hello.length, 0))}, but its label says ${sha256(hello)}`,
  );
  t.same(cached(cacheDir, 'parcels'), [], 'the corrupt copy is gone');
  const repaired = await store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent');
  t.equal(repaired.fetched, 1, 'fetched again');
  corrupt();
  t.equal((await store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent')).fetched, 1, 'IfNotPresent repairs it too');
});

t.test('a parcel torn by a crash (cached parcels are not fsynced) is found by a new store and fetched again', async (t) => {
  const { url } = await listeningApp(t);
  const hello = await wasm('hello');
  await pushBindle(publisher(t, url), 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', hello)]);
  const { store: first, cacheDir } = moduleStore(t, url);
  const ref = 'bindle:example.com/hello/1.0.0';
  const path = join(cacheDir, 'parcels', sha256(hello));
  t.equal((await first.get(ref, 'IfNotPresent')).fetched, 1);
  // What a crash before the data reached the disk can leave behind the renamed name.
  const torn: Array<[string, Buffer, RegExp]> = [
    ['an empty file', Buffer.alloc(0), /got 0 bytes, but its label says \d+ bytes/],
    ['a short file', hello.subarray(0, hello.length >> 1), /got \d+ bytes, but its label says \d+ bytes/],
    ['the right size, zero blocks at the end', Buffer.concat([hello.subarray(0, 8), Buffer.alloc(hello.length - 8)]), /the data has sha256 /],
  ];
  for (const [what, bytes, reason] of torn) {
    // Each round starts like a restarted kubelet: a new store on the same cache.
    const { store, logs } = moduleStore(t, url, { cacheDir });
    chmodSync(path, 0o644);
    writeFileSync(path, bytes);
    const resolved = await store.get(ref, 'IfNotPresent');
    t.equal(resolved.fetched, 1, `${what}: fetched again`);
    t.match(logs.join('\n'), reason, `${what}: logged as corrupt`);
    t.same(readFileSync(path), hello, `${what}: replaced by the real bytes`);
    t.equal(statSync(path).mode & 0o777, 0o444, `${what}: read-only again`);
    t.same(cached(cacheDir, 'parcels'), [sha256(hello)], `${what}: no temp file left`);
  }
});

t.test('refusals', async (t) => {
  const mallory = createSecretKey('Mallory <mallory@example.com>', ['creator']);
  const serverTrust = creatorKeyring();
  serverTrust.add(publicKeyEntry(mallory));
  const { ta, url } = await listeningApp(t, { keyring: serverTrust });
  const pub = publisher(t, url);
  const hello = await wasm('hello');

  t.test('a creator key the kubelet does not trust', async (t) => {
    await pushBindle(pub, 'example.com/mallory', '1.0.0', [wasmParcel('hello.wasm', hello)], { key: mallory });
    const { store, cacheDir } = moduleStore(t, url);
    await t.rejects(store.get('bindle:example.com/mallory/1.0.0', 'Always'), {
      code: 'unknown_signing_key',
      message: /signature by "Mallory <mallory@example\.com>" \(creator\) on example\.com\/mallory\/1\.0\.0 was made with a key that is not in the keyring; strategy CreativeIntegrity requires every checked signer to be known/,
    });
    t.same([cached(cacheDir, 'invoices'), cached(cacheDir, 'parcels')], [[], []], 'nothing unverified is cached');
  });

  t.test('a tampered signature', async (t) => {
    const invoice = signedInvoice('example.com/tampered', '1.0.0', [wasmParcel('hello.wasm', hello)]);
    const [sig] = invoice.signature ?? [];
    if (sig === undefined) throw new Error('unsigned');
    const bytes = Buffer.from(sig.signature, 'base64');
    bytes[10] = (bytes[10] ?? 0) ^ 0xff;
    const tampered: Invoice = { ...invoice, signature: [{ ...sig, signature: bytes.toString('base64') }] };
    await storeInvoiceDirect(ta, tampered);
    const { store, cacheDir } = moduleStore(t, url);
    await t.rejects(store.get('bindle:example.com/tampered/1.0.0', 'Always'), {
      code: 'unverified',
      message: /signature by "Bindle-TS Test Creator <creator@bindle-ts\.test>" \(creator\) on example\.com\/tampered\/1\.0\.0 does not verify/,
    });
    t.same([cached(cacheDir, 'invoices'), cached(cacheDir, 'parcels')], [[], []]);
  });

  t.test('a yanked bindle', async (t) => {
    await pushBindle(pub, 'example.com/yanked', '1.0.0', [wasmParcel('hello.wasm', hello)]);
    await pub.yankInvoice('example.com/yanked/1.0.0');
    const { store, logs } = moduleStore(t, url);
    await t.rejects(store.get('bindle:example.com/yanked/1.0.0', 'Always'), { code: 'yanked', message: /has been yanked/ });
    const allowed = await store.get('bindle:example.com/yanked/1.0.0', 'Always', { allowYanked: true });
    t.equal(allowed.invoice?.yanked, true);
    t.match(logs.join('\n'), /running yanked bindle example\.com\/yanked\/1\.0\.0, as allowed/);
    await t.rejects(store.get('bindle:example.com/yanked/1.0.0', 'IfNotPresent'), {
      code: 'yanked',
      message: 'bindle example.com/yanked/1.0.0 is yanked; a pod may run it only with the annotation bindle.dev/allow-yanked: "true"',
    }, 'the cached copy remembers the yank');
  });

  t.test('an invoice with no wasm module', async (t) => {
    await pushBindle(pub, 'example.com/docs', '1.0.0', [message, { name: 'README.md', data: Buffer.from('# docs\n'), mediaType: 'text/markdown' }]);
    const { store, cacheDir } = moduleStore(t, url);
    await t.rejects(store.get('bindle:example.com/docs/1.0.0', 'Always'), {
      code: 'bad_request',
      message: 'bindle example.com/docs/1.0.0 has no application/wasm parcel among the selected parcels ("message.txt" (text/plain), "README.md" (text/markdown)): there is no module to run',
    });
    t.same(cached(cacheDir, 'parcels'), [], 'decided before downloading anything');
  });

  t.test('a client without a keyring', async (t) => {
    const client = new BindleClient({ baseUrl: url });
    t.teardown(() => client.close());
    t.throws(() => new ModuleStore({ client, cacheDir: t.testdir() }), { code: 'invalid_config', message: /give its client a keyring/ });
  });
});

t.test('a server that serves the wrong parcel bytes', async (t) => {
  const hello = await wasm('hello');
  const invoice = signedInvoice('example.com/evil', '1.0.0', [wasmParcel('hello.wasm', hello)]);
  let parcelGets = 0;
  let serveShort = false;
  const origin = await serveLocally(t, (req, res) => {
    if (req.url === '/v1/_i/example.com/evil/1.0.0') {
      res.setHeader('content-type', 'application/toml');
      res.end(renderInvoice(invoice));
    } else if (req.url === `/v1/_i/example.com/evil/1.0.0@${sha256(hello)}`) {
      parcelGets += 1;
      const wrong = serveShort ? hello.subarray(1) : Buffer.from(hello.map((b, i) => (i === hello.length - 1 ? b ^ 1 : b)));
      res.setHeader('content-type', 'application/wasm');
      res.setHeader('content-length', String(wrong.length));
      res.end(wrong);
    } else {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/toml');
      res.end('error = "not found"\n');
    }
  });
  const url = `${origin}/v1/`;
  const { store, cacheDir } = moduleStore(t, url);
  await t.rejects(store.get('bindle:example.com/evil/1.0.0', 'Always'), {
    code: 'digest_mismatch',
    message: new RegExp(`hello\\.wasm.*${sha256(hello)}`),
  });
  t.equal(parcelGets, 1);
  // A small parcel is checked before any file is made, so the directory may not exist at all.
  t.same(cached(cacheDir, 'parcels'), [], 'no parcel and no temp file is left in the cache');
  t.same(
    cached(cacheDir, 'invoices'),
    [`${canonicalId({ name: 'example.com/evil', version: '1.0.0' })}.toml`],
    'the verified invoice, written while the parcel downloaded, is in place when get fails',
  );
  serveShort = true;
  await t.rejects(store.get('bindle:example.com/evil/1.0.0', 'Always'), { code: 'size_mismatch', message: /hello\.wasm/ });
  t.same(cached(cacheDir, 'parcels'), []);
});

t.test('selection: oneOf alternatives, an optional group and feature filters', async (t) => {
  const { url } = await listeningApp(t);
  const en = { name: 'greeting-en.txt', data: Buffer.from('hello\n') };
  const fr = { name: 'greeting-fr.txt', data: Buffer.from('bonjour\n') };
  const extra = { name: 'extra.txt', data: Buffer.from('extra\n') };
  const app = wasmParcel('cat.wasm', await wasm('cat'));
  const labelOf = (p: TestParcel, feature?: Record<string, Record<string, string>>): Label => ({
    sha256: sha256(p.data),
    mediaType: p.mediaType ?? 'text/plain',
    name: p.name,
    size: p.data.length,
    ...(feature !== undefined ? { feature } : {}),
  });
  const withConditions = signedInvoice('example.com/greeter', '1.0.0', [], {
    extra: {
      group: [
        { name: 'lang', required: true, satisfiedBy: 'oneOf' },
        { name: 'extras', satisfiedBy: 'optional' },
      ],
      parcel: [
        { label: labelOf(app) },
        { label: labelOf(en, { lang: { code: 'en' } }), conditions: { memberOf: ['lang'] } },
        { label: labelOf(fr, { lang: { code: 'fr' } }), conditions: { memberOf: ['lang'] } },
        { label: labelOf(extra), conditions: { memberOf: ['extras'] } },
      ],
    },
  });
  const pub = publisher(t, url);
  const created = await pub.createInvoice(withConditions);
  for (const p of [app, en, fr, extra]) {
    const label = created.invoice.parcel?.find((x) => x.label.name === p.name)?.label;
    if (label !== undefined) await pub.createParcel('example.com/greeter/1.0.0', label, p.data);
  }
  const { store } = moduleStore(t, url);
  const ref = 'bindle:example.com/greeter/1.0.0';
  const names = (m: { files: Array<{ label: { name: string } }> }): string[] => m.files.map((f) => f.label.name);

  const plain = await store.get(ref, 'IfNotPresent');
  t.equal(plain.entry.label.name, 'cat.wasm');
  t.same(names(plain), ['greeting-en.txt'], 'the first alternative; the optional group is left out');
  t.equal(plain.fetched, 2, 'only the selected parcels are fetched');

  const chosen = await store.get(ref, 'IfNotPresent', { choices: { lang: 'greeting-fr.txt' }, groups: ['extras'] });
  t.same(names(chosen), ['greeting-fr.txt', 'extra.txt'], 'the chosen alternative and the requested optional group');
  t.equal(chosen.fetched, 2);

  const filtered = await store.get(ref, 'IfNotPresent', { features: [{ section: 'lang', name: 'code', value: 'fr' }] });
  t.same(names(filtered), ['greeting-fr.txt'], 'a feature filter excludes the other alternative');

  await t.rejects(store.get(ref, 'IfNotPresent', { groups: ['nope'] }), { code: 'unknown_group', message: /group "nope" was requested/ });
  await t.rejects(store.get(ref, 'IfNotPresent', { features: [{ section: 'lang', name: 'code', value: 'de' }] }), {
    code: 'no_choice',
    message: /group "lang" must be satisfied by oneOf its members but all 2 are excluded/,
  });
});

t.test('a range reference resolves to the newest matching version that is not yanked', async (t) => {
  const { url } = await listeningApp(t);
  const pub = publisher(t, url);
  const hello = await wasm('hello');
  for (const version of ['1.0.0', '1.1.0', '1.2.0', '2.0.0', '1.3.0-beta.1']) {
    await pushBindle(pub, 'example.com/hello', version, [wasmParcel('hello.wasm', hello), { name: 'version.txt', data: Buffer.from(version) }]);
  }
  await pushBindle(pub, 'example.com/hello-world', '1.9.0', [wasmParcel('hello.wasm', hello)]);
  await pub.yankInvoice('example.com/hello/1.2.0');
  const { store, logs } = moduleStore(t, url);

  const resolved = await store.get('bindle:example.com/hello@^1.0.0', 'Always');
  t.equal(resolved.id, 'example.com/hello/1.1.0', 'not the yanked 1.2.0, not the prerelease, not hello-world 1.9.0');
  t.match(logs.join('\n'), 'bindle:example.com/hello@^1.0.0: resolved to example.com/hello/1.1.0 (highest non-yanked version matching "^1.0.0")');
  t.equal((await store.get('bindle:example.com/hello@>=1.0.0', 'IfNotPresent')).id, 'example.com/hello/2.0.0');
  t.equal((await store.get('bindle:example.com/hello@~1.0', 'IfNotPresent')).id, 'example.com/hello/1.0.0');
  t.equal((await store.get('bindle:example.com/hello@^1.0.0', 'Never')).id, 'example.com/hello/1.1.0', 'Never picks among the cached versions');
  await t.rejects(store.get('bindle:example.com/hello@^3', 'Always'), {
    code: 'not_found',
    message: 'no version of example.com/hello that is not yanked satisfies "^3" on the server',
  });
  const trusting = new Keyring();
  const stranger = moduleStore(t, url, { keyring: trusting });
  await t.rejects(stranger.store.get('bindle:example.com/hello@^1.0.0', 'Always'), { code: 'unknown_signing_key' }, 'the resolved invoice is verified like any other');
});

t.test('fetchPodModules resolves every container in parallel and names the one that fails', async (t) => {
  const { url } = await listeningApp(t);
  const pub = publisher(t, url);
  await pushBindle(pub, 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', await wasm('hello'))]);
  await pushBindle(pub, 'example.com/cat', '1.0.0', [wasmParcel('cat.wasm', await wasm('cat')), message]);
  const { store } = moduleStore(t, url);
  const pod = parsePodManifest(
    [
      'apiVersion: v1',
      'kind: Pod',
      'metadata: { name: two }',
      'spec:',
      '  containers:',
      '    - { name: a, image: "bindle:example.com/hello/1.0.0" }',
      '    - { name: b, image: "bindle:example.com/cat@^1" }',
    ].join('\n'),
    'two.yaml',
  );
  const modules = await store.fetchPodModules(pod);
  t.same([...modules].map(([name, m]) => [name, m.id, m.entry.label.name]), [
    ['a', 'example.com/hello/1.0.0', 'hello.wasm'],
    ['b', 'example.com/cat/1.0.0', 'cat.wasm'],
  ]);
  const [first] = pod.containers;
  if (first === undefined) throw new Error('no container');
  const absent: ContainerSpec = { ...first, name: 'c', image: 'bindle:example.com/absent/1.0.0' };
  const broken = { ...pod, containers: [...pod.containers, absent] };
  await t.rejects(store.fetchPodModules(broken), { code: 'not_found', message: /^pod two, container "c": fetching invoice example\.com\/absent\/1\.0\.0/ });
});

t.test('a directory where a cached parcel belongs is reported as a problem of the module cache', async (t) => {
  const { url } = await listeningApp(t);
  const hello = await wasm('hello');
  await pushBindle(publisher(t, url), 'example.com/hello', '1.0.0', [wasmParcel('hello.wasm', hello)]);
  const { store, cacheDir } = moduleStore(t, url);
  const path = join(cacheDir, 'parcels', sha256(hello));
  mkdirSync(join(path, 'inside'), { recursive: true });
  await t.rejects(store.get('bindle:example.com/hello/1.0.0', 'IfNotPresent'), {
    message: `the module cache (${cacheDir}) cannot hold parcel ${sha256(hello)} (hello.wasm): ${path} cannot be checked or replaced: it is a directory, not a file; remove it`,
  });
});

t.test('an OCI registry that speaks plain HTTP, not listed as insecure, is named with --insecure-registry', async (t) => {
  const server = createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { store } = moduleStore(t, 'http://127.0.0.1:1/v1/');
  await t.rejects(store.get(`${host}/example/hello:1.0.0`, 'Always'), {
    code: 'unavailable',
    message: new RegExp(`\\(${host.replace(/\./g, '\\.')} does not speak TLS: if it is a plain-HTTP registry, list it with --insecure-registry ${host.replace(/\./g, '\\.')} or BINDLE_KUBELET_INSECURE_REGISTRIES\\)$`),
  });
});

t.test('a range passes over versions that fail verification, alike under every pull policy', async (t) => {
  const mallory = createSecretKey('Mallory <mallory@example.com>', ['creator']);
  const serverTrust = creatorKeyring();
  serverTrust.add(publicKeyEntry(mallory));
  const { url } = await listeningApp(t, { keyring: serverTrust });
  const pub = publisher(t, url);
  const hello = await wasm('hello');
  const pushed = new Map<string, Invoice>();
  for (const [version, key] of [['1.0.0', undefined], ['1.1.0', undefined], ['1.2.0', mallory], ['2.0.0', mallory]] as const) {
    pushed.set(version, await pushBindle(pub, 'example.com/rng', version, [wasmParcel('hello.wasm', hello)], key === undefined ? {} : { key }));
  }
  const { store, cacheDir, logs } = moduleStore(t, url);
  const untrusted = /^unknown_signing_key: .*signature by "Mallory <mallory@example\.com>" \(creator\) on example\.com\/rng\/(2\.0\.0|1\.2\.0) was made with a key that is not in the keyring/;
  for (const policy of ['Always', 'IfNotPresent'] as const) {
    const resolved = await store.get('bindle:example.com/rng@*', policy);
    t.equal(resolved.id, 'example.com/rng/1.1.0', `${policy}: the highest version that verifies`);
    t.match(resolved.skipped, [{ version: '2.0.0', reason: untrusted }, { version: '1.2.0', reason: untrusted }], `${policy}: the versions passed over, and why`);
    t.equal(resolved.skipped?.length, 2);
  }
  const log = logs.join('\n');
  t.match(log, /bindle:example\.com\/rng@\*: skipping example\.com\/rng\/2\.0\.0, it failed verification: .*not in the keyring.* \(unknown_signing_key\)/);
  t.match(log, 'bindle:example.com/rng@*: resolved to example.com/rng/1.1.0 (highest non-yanked version matching "*" that verifies; skipped 2.0.0, 1.2.0, which failed verification)');

  // An invoice this keyring does not trust in the cache (cached by a kubelet that trusted Mallory): Never passes it over too, and says so.
  const cachedInvoice = join(cacheDir, 'invoices', `${canonicalId({ name: 'example.com/rng', version: '2.0.0' })}.toml`);
  writeFileSync(cachedInvoice, renderInvoice(pushed.get('2.0.0') ?? signedInvoice('x', '0.0.0', []), 'toml'));
  const never = await store.get('bindle:example.com/rng@*', 'Never');
  t.equal(never.id, 'example.com/rng/1.1.0', 'Never: the same version');
  t.match(never.skipped, [{ version: '2.0.0', reason: /^unknown_signing_key: the cached invoice of example\.com\/rng\/2\.0\.0 .* failed verification/ }], 'Never: the cached version passed over');

  await t.rejects(store.get('bindle:example.com/rng@>=1.2.0', 'Always'), {
    code: 'unknown_signing_key',
    message: /^no version of example\.com\/rng matching ">=1\.2\.0" verifies: 2\.0\.0: unknown_signing_key: .*; 1\.2\.0: unknown_signing_key: /,
  }, 'when none verifies, the pod is refused');
});

t.test('a reference resolves to the same bindle under every pull policy, builds of one version included', async (t) => {
  const { url } = await listeningApp(t);
  const pub = publisher(t, url);
  const hello = await wasm('hello');
  for (const version of ['1.0.0+zzz', '1.0.0', '1.0.0+aaa', '0.9.0']) {
    await pushBindle(pub, 'example.com/builds', version, [wasmParcel('hello.wasm', hello), { name: 'version.txt', data: Buffer.from(version) }]);
  }
  const { store } = moduleStore(t, url);
  const cases: Array<[string, string]> = [
    ['bindle:example.com/builds@1.0.0+zzz', 'example.com/builds/1.0.0+zzz'],
    ['bindle:example.com/builds@1.0.0+aaa', 'example.com/builds/1.0.0+aaa'],
    ['bindle:example.com/builds@1.0.0', 'example.com/builds/1.0.0'],
    ['bindle:example.com/builds@=1.0.0', 'example.com/builds/1.0.0'],
    ['bindle:example.com/builds@^1.0.0', 'example.com/builds/1.0.0'],
    ['bindle:example.com/builds@<1.0.0', 'example.com/builds/0.9.0'],
  ];
  for (const policy of ['Always', 'IfNotPresent', 'Never'] as const) {
    for (const [ref, id] of cases) t.equal((await store.get(ref, policy)).id, id, `${policy}: ${ref}`);
  }
});

t.test('under IfNotPresent a cached invoice that does not verify is fetched again, not passed over', async (t) => {
  const { url } = await listeningApp(t);
  const pub = publisher(t, url);
  const hello = await wasm('hello');
  for (const version of ['1.0.0', '1.1.0']) await pushBindle(pub, 'example.com/rot', version, [wasmParcel('hello.wasm', hello)]);
  const { store, cacheDir, logs } = moduleStore(t, url);
  t.equal((await store.get('bindle:example.com/rot@^1.0.0', 'IfNotPresent')).id, 'example.com/rot/1.1.0');
  const path = join(cacheDir, 'invoices', `${canonicalId({ name: 'example.com/rot', version: '1.1.0' })}.toml`);
  const good = readFileSync(path, 'utf8');
  const rot = (): void => {
    chmodSync(path, 0o644);
    writeFileSync(path, good.replace(/signature = "(.)/, (_, c: string) => `signature = "${c === 'A' ? 'B' : 'A'}`));
  };
  rot();
  const resolved = await store.get('bindle:example.com/rot@^1.0.0', 'IfNotPresent');
  t.equal(resolved.id, 'example.com/rot/1.1.0', 'the range still resolves to the newest version');
  t.same(resolved.skipped, [], 'nothing passed over');
  t.match(logs.join('\n'), /the cached invoice of example\.com\/rot\/1\.1\.0 \(.*\) failed verification: .*; fetching it from the server again/);
  t.equal(readFileSync(path, 'utf8'), good, 'the cache holds the server\'s copy again');
  rot();
  t.equal((await store.get('bindle:example.com/rot/1.1.0', 'IfNotPresent')).id, 'example.com/rot/1.1.0', 'an exact reference is repaired too');
  rot();
  await t.rejects(store.get('bindle:example.com/rot/1.1.0', 'Never'), { message: /the cached invoice of example\.com\/rot\/1\.1\.0 .* failed verification/ }, 'Never cannot ask the server');
});
