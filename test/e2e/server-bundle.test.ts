/**
 * The built server bundle (scripts/bundle-server.mjs, run by `npm run build`) is pure ASCII, so
 * that V8 holds each of its modules' source text one byte per character, not two: a single
 * non-Latin-1 character in a comment doubled the memory the 1.4 MB bundle's text took. And what
 * a default start does not use stays out of the modules it loads (the entry and the chunks it
 * imports statically): every module loaded is held in memory for the life of the process; so
 * neither Ajv's compiler (the validators are compiled at build time) nor the built-ins only an
 * HTTP/2 or TLS server or a metrics push use (node:http2, node:https), nor @opentelemetry/api
 * (metric exemplars), are loaded by a server that serves plain HTTP; built-ins are required, not
 * imported, so that no facade reads (and loads) every export. Its whitespace is minified,
 * its names kept. The launcher
 * (dist/server/bin/launch.cjs) keeps the young generation small before it loads the bundle, and
 * V8's optimizing compiler off until the server listens, wherever it is installed; it is back on
 * for the load that follows.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { isBuiltin } from 'node:module';
import { join } from 'node:path';
import { bundleAsServer } from '../helpers/bundle-as-server.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { exitList, withModuleList } from '../helpers/module-list.js';
import { startServerProcess } from '../helpers/server-process.js';

const BUNDLE_DIR = join(REPO_ROOT, 'dist', 'server', 'bundle');

t.test('every module of the server bundle is pure ASCII', (t) => {
  t.ok(existsSync(join(BUNDLE_DIR, 'bindle-server.mjs')), `${BUNDLE_DIR} is built (npm run build)`);
  const modules = readdirSync(BUNDLE_DIR).filter((name) => name.endsWith('.mjs'));
  t.ok(modules.length > 1, 'the entry and its chunks');
  for (const name of modules) {
    const text = readFileSync(join(BUNDLE_DIR, name), 'utf8');
    const offset = text.search(/[\u0080-\uffff]/);
    t.equal(offset, -1, `${name} is ASCII${offset < 0 ? '' : `; not at ${JSON.stringify(text.slice(Math.max(0, offset - 40), offset + 10))}`}`);
  }
  t.end();
});

t.test('the server bundle is whitespace-minified, with its names and a source map', (t) => {
  const text = readFileSync(join(BUNDLE_DIR, 'bindle-server.mjs'), 'utf8');
  // Unminified, esbuild writes a statement per line with its indentation and the sources' comments.
  t.ok(text.split('\n').length < 2000, `few lines (${text.split('\n').length})`);
  t.notMatch(text, /\/\/ (?:server|core|node_modules)\//, 'no comment naming a source file');
  t.match(text, /\bfunction compactHeap\(/, 'functions keep their names (stack traces, pino\'s error type)');
  const map = JSON.parse(readFileSync(join(BUNDLE_DIR, 'bindle-server.mjs.map'), 'utf8')) as { sources: string[] };
  t.ok(map.sources.some((source) => source.endsWith('server/heap-compaction.ts')), 'and its source map leads back to the TypeScript');
  t.end();
});

/** The sources (paths relative to the repository) of the bundle's modules, from their source maps. */
function bundledSources(): Map<string, string[]> {
  const sources = new Map<string, string[]>();
  for (const name of readdirSync(BUNDLE_DIR).filter((n) => n.endsWith('.mjs'))) {
    const map = JSON.parse(readFileSync(join(BUNDLE_DIR, `${name}.map`), 'utf8')) as { sources: string[] };
    sources.set(name, map.sources.map((source) => source.replace(/^(?:\.\.\/)+/, '')));
  }
  return sources;
}

/** The modules `name` imports statically (`import ... from "./x.mjs"`, `import "./x.mjs"`), not `import("./x.mjs")`. */
function staticImports(text: string): string[] {
  return [...text.matchAll(/(?:\bfrom\s*|\bimport\s*)"\.\/([\w.-]+\.mjs)"/g)].map((m) => m[1] ?? '');
}

/** The entry and every chunk it loads at start-up, transitively. */
function startupModules(): Map<string, string> {
  const loaded = new Map<string, string>();
  const entry = readFileSync(join(BUNDLE_DIR, 'bindle-server.mjs'), 'utf8');
  const pending = staticImports(entry);
  loaded.set('bindle-server.mjs', entry);
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (loaded.has(name)) continue;
    const text = readFileSync(join(BUNDLE_DIR, name), 'utf8');
    loaded.set(name, text);
    pending.push(...staticImports(text));
  }
  return loaded;
}

t.test('the launcher keeps the young generation small before it loads the bundle', (t) => {
  const launcher = readFileSync(join(REPO_ROOT, 'dist', 'server', 'bin', 'launch.cjs'), 'utf8');
  const flag = launcher.indexOf('--semi-space-growth-factor=1');
  t.ok(flag > 0, 'it stops the growth');
  t.ok(flag < launcher.indexOf('import(SERVER_BUNDLE)'), 'before it imports the bundle');
  // A CommonJS module is read synchronously: loading it starts no thread pool (see launch.cts).
  t.same([...launcher.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]), ['node:v8'], 'and it loads nothing else first');
  t.end();
});

t.test('the server bundle carries the validators compiled at build time, not Ajv\'s compiler', (t) => {
  const all = [...bundledSources()];
  t.same(all.filter(([, sources]) => sources.some((s) => s.startsWith('node_modules/ajv/dist/compile/'))).map(([name]) => name), [], 'no module holds Ajv\'s compiler');
  t.same(all.filter(([, sources]) => sources.includes('node_modules/ajv/dist/core.js')).map(([name]) => name), [], 'nor Ajv itself');
  t.ok(all.some(([, sources]) => sources.some((s) => s.includes('schema/validators.standalone.cjs'))), 'the generated validators are in it');
  t.end();
});

/** The built-in modules a server process loaded. */
function loadedBuiltins(output: string): string[] {
  return exitList(output, 'MODULES').filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
}

t.test('a server that serves plain HTTP never loads node:http2, node:https or node:tls', async (t) => {
  const server = await startServerProcess(t, withModuleList(t));
  const health = await fetch(`${server.origin}/healthz`);
  t.equal(health.status, 200, 'it serves');
  t.equal((await fetch(`${server.origin}/metrics`)).status, 200, 'and its metrics');
  t.equal(await server.stop(), 0, 'it stops cleanly');
  const loaded = loadedBuiltins(server.output());
  t.ok(loaded.includes('http'), `the list is of what it loaded (${loaded.length} modules, node:http among them)`);
  for (const name of ['http2', 'https', 'tls']) t.notOk(loaded.includes(name), `node:${name} is not loaded`);
  // Nor what ES module imports of built-ins would (their facades read every export, getters too).
  t.ok(loaded.includes('crypto') && loaded.includes('util'), 'node:crypto and node:util are loaded');
  // crypto.webcrypto, util.MIMEType, util.parseArgs
  for (const name of ['internal/crypto/webcrypto', 'internal/mime', 'internal/util/parse_args/parse_args']) t.notOk(loaded.includes(name), `${name} is not`);
  const files = exitList(server.output(), 'FILES');
  t.ok(files.some((file) => file.includes('better_sqlite3.node')), `the file list is of what it required (${files.length} files, better-sqlite3's addon among them)`);
  t.same(files.filter((file) => file.includes('@opentelemetry')), [], '@opentelemetry/api is not loaded');
});

t.test('the bundles require Node built-ins; only the banner imports one (node:module)', (t) => {
  const clientDir = join(REPO_ROOT, 'client', 'dist');
  const files = [
    ...readdirSync(BUNDLE_DIR).filter((n) => n.endsWith('.mjs')).map((n) => join(BUNDLE_DIR, n)),
    ...readdirSync(clientDir).filter((n) => n.endsWith('.mjs')).map((n) => join(clientDir, n)),
  ];
  const imported = new Set<string>();
  let cryptoRequired = false;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    // The banner is the file's first line; esbuild writes an import as `from"node:x"`, the banner `from 'node:module'`.
    for (const m of text.matchAll(/\bfrom\s*["']((?:node:)?[a-z_/]+)["']/g)) if (m[1] !== undefined && isBuiltin(m[1])) imported.add(m[1]);
    cryptoRequired ||= text.includes('__require("node:crypto")');
  }
  t.same([...imported], ['node:module'], `no module of ${files.length} imports another built-in`);
  t.ok(cryptoRequired, 'node:crypto is required');
  t.end();
});

t.test('a built-in is required with the names its importers use, read when the bundle loads', async (t) => {
  const dir = t.testdir({
    'entry.ts': `
      import { createHash } from 'node:crypto';
      import path, { join } from 'node:path';
      import * as os from 'node:os';
      process.stdout.write(JSON.stringify({
        hash: createHash('sha256').update('x').digest('hex'),
        join: join('a', 'b'),
        sameDefault: path.join === join,
        os: typeof os.hostname(),
        webcrypto: process.moduleLoadList.includes('NativeModule internal/crypto/webcrypto'),
      }));
    `,
  });
  t.same(await bundleAsServer(join(dir, 'entry.ts'), join(dir, 'out')), [0, null], 'scripts/bundle-server.mjs bundled it');
  const bundled = readFileSync(join(dir, 'out', 'entry.mjs'), 'utf8');
  t.match(bundled, /read\$\("createHash"\)/, 'createHash is read by name');
  t.notMatch(bundled, /read\$\("webcrypto"\)/, 'a name nobody imports is not read');
  // Without tap's preload, which loads crypto.webcrypto itself.
  const run = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, join(dir, 'out', 'entry.mjs')], { encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, `it ran: ${run.stderr}`);
  t.same(JSON.parse(run.stdout), {
    hash: '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881',
    join: join('a', 'b'),
    sameDefault: true,
    os: 'string',
    webcrypto: false,
  }, 'named, default and namespace imports work, and crypto.webcrypto was never loaded');
});

t.test('@opentelemetry/api is not in the bundle; prom-client loads it from node_modules when it needs it', async (t) => {
  t.same([...bundledSources()].filter(([, sources]) => sources.some((s) => s.includes('node_modules/@opentelemetry/'))).map(([name]) => name), [], 'no module holds it');
  // prom-client reads it only for exemplars; bundled as the server is, with them on, it must work.
  const dir = t.testdir({
    'entry.ts': `
      import { Registry, collectDefaultMetrics } from 'prom-client';
      const register = new Registry(Registry.OPENMETRICS_CONTENT_TYPE);
      collectDefaultMetrics({ register, enableExemplars: true });
      process.stdout.write(await register.metrics());
    `,
  });
  t.same(await bundleAsServer(join(dir, 'entry.ts'), join(dir, 'out')), [0, null], 'scripts/bundle-server.mjs bundled it');
  const bundled = readFileSync(join(dir, 'out', 'entry.mjs'), 'utf8');
  t.match(bundled, /__require\("@opentelemetry\/api"\)/, 'the bundle requires it by name, on first use');
  const run = spawnSync(process.execPath, [join(dir, 'out', 'entry.mjs')], { encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, `the bundled metrics ran: ${run.stderr}`);
  t.match(run.stdout, /^process_cpu_user_seconds_total\b/m, 'and exported the process CPU, the metric that reads it');
});

t.test('over TLS, the server loads node:https when it starts and serves', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  } catch {
    t.comment('skipped: no openssl command to make a test certificate');
    return;
  }
  const server = await startServerProcess(t, { args: ['--tls-cert', cert, '--tls-key', key], ...withModuleList(t) });
  t.match(server.origin, /^https:/, 'it listens with TLS');
  const status = await new Promise<number | undefined>((resolve, reject) => {
    httpsGet(`${server.origin}/healthz`, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });
  t.equal(status, 200, 'and serves over it');
  t.equal(await server.stop(), 0, 'it stops cleanly');
  t.ok(loadedBuiltins(server.output()).includes('https'), 'node:https was loaded');
});

t.test('a default start does not load the optional backends, authenticators, OpenAPI document or key generation', (t) => {
  const loaded = startupModules();
  t.ok(loaded.size > 1, `the entry imports its chunks (${[...loaded.keys()].join(', ')})`);
  const all = readdirSync(BUNDLE_DIR).filter((name) => name.endsWith('.mjs')).map((name) => readFileSync(join(BUNDLE_DIR, name), 'utf8'));
  // Text only that library's code contains; each library is in the bundle, loaded on first use.
  const lazy: ReadonlyArray<readonly [string, string]> = [
    ['bcryptjs (htpasswd)', 'Illegal number of rounds'],
    ['jose (OIDC)', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
    ['pg (PostgreSQL index)', 'SCRAM-SERVER-FIRST-MESSAGE'],
    ['the AWS SDK (S3 parcel store)', 'S3ServiceException'],
    ['the OpenAPI document (/openapi.json)', 'The Bindle v1 HTTP API: invoices'],
  ];
  for (const [library, marker] of lazy) {
    t.ok(all.some((text) => text.includes(marker)), `${library} is in the bundle`);
    const holders = [...loaded].filter(([, text]) => text.includes(marker)).map(([name]) => name);
    t.same(holders, [], `${library} is not loaded at start-up`);
  }
  // Keys are generated with node:crypto; a pure-JS Ed25519 in the start-up path got optimized by
  // V8 at the first start (a new host key), which kept megabytes of compiler output resident.
  t.notOk(all.some((text) => text.includes('crypto_scalarmult_BYTES')), 'tweetnacl is not in the server bundle');
  t.end();
});

t.test('of the AWS SDK, the bundle holds the S3 commands the store and its client use, and no other', async (t) => {
  // Bundled from the SDK's ES module build, tree-shaken to the names server/storage/s3-sdk.ts
  // imports; from its CommonJS build, every command of the client was in the store's chunks.
  const commands = readdirSync(join(REPO_ROOT, 'node_modules', '@aws-sdk', 'client-s3', 'dist-es', 'commands'))
    .filter((name) => name.endsWith('Command.js'))
    .map((name) => name.slice(0, -'.js'.length));
  t.ok(commands.length > 90, `the client defines ${commands.length} commands`);
  const used = Object.keys(await import('../../server/storage/s3-sdk.js')).filter((name) => name.endsWith('Command'));
  t.ok(used.includes('PutObjectCommand') && used.includes('UploadPartCommand'), `the store uses ${used.join(', ')}`);
  const all = readdirSync(BUNDLE_DIR).filter((name) => name.endsWith('.mjs')).map((name) => readFileSync(join(BUNDLE_DIR, name), 'utf8')).join('\n');
  // esbuild writes each command class as `var <Name>=class extends command(...)`.
  const bundled = commands.filter((name) => new RegExp(`\\b${name}=class extends\\b`).test(all));
  // CreateSession: the S3Client's own, for S3 Express One Zone buckets' session credentials.
  t.same(bundled.sort(), [...used, 'CreateSessionCommand'].sort(), 'the bundled commands are those the store imports and the client\'s own');
  const sdkSources = [...bundledSources().values()].flat().filter((source) => /node_modules\/@(?:aws-sdk|smithy)\//.test(source));
  t.ok(sdkSources.length > 0, 'the SDK is in the bundle');
  t.same(sdkSources.filter((source) => source.includes('/dist-cjs/')), [], 'from its ES module build only');
});

t.test('better-sqlite3 is bundled and its addon required directly, not found through node\'s module loader and `bindings`', (t) => {
  const loaded = [...startupModules().values()].join('\n');
  t.match(loaded, /require\("better-sqlite3\/build\/Release\/better_sqlite3\.node"\)/, 'the addon is required by its path in the package');
  t.notMatch(loaded, /(?:require\(|from\s*|import\s*)"better-sqlite3"/, 'the package\'s JavaScript is not loaded from node_modules');
  t.notMatch(loaded, /require\("bindings"\)/, 'nor the `bindings` search');
  t.end();
});

/** The lines of V8's `--trace-opt` output about Turbofan marking or compiling a function. */
function turbofanLines(output: string): string[] {
  return output.split('\n').filter((line) => /^\[(?:marking|compiling method|completed)\b.*TURBOFAN/.test(line));
}

t.test('a default start and its first requests leave V8\'s optimizing compiler unused', async (t) => {
  // A single Turbofan compilation keeps ~4.5 MiB of the compiler's code and memory resident in an
  // idle server; loading better-sqlite3's 15 CommonJS files ran node:path's normalizeString
  // often enough to get it optimized at every start (docs/performance.md, "Idle memory: no
  // optimizing compilation at start"). Without tap's preload, which runs code of its own.
  const server = await startServerProcess(t, { withoutPreload: true, nodeArgs: ['--trace-opt'] });
  t.equal((await fetch(`${server.origin}/healthz`)).status, 200, 'it serves');
  t.equal((await fetch(`${server.origin}/v1/_q`)).status, 200, 'and queries its index');
  t.equal(await server.stop(), 0, 'it stops cleanly');
  t.same(turbofanLines(server.output()), [], 'no function was marked for or compiled by Turbofan');
});

t.test('installed at a long path, as a global npm install is, a start still leaves the optimizing compiler unused', async (t) => {
  // The start's path work (module resolution) grows with the installation's path: from a clone
  // ~25 characters deep, normalizeString was optimized at every start until the launcher kept
  // the optimizing compiler off for it (server/compiler-tiers.ts).
  const root = join(mkdtempSync(join(tmpdir(), 'bindle-')), 'usr', 'local', 'lib', 'node_modules', 'bindle-ts-installed-here');
  t.teardown(() => rmSync(join(root, '..', '..', '..', '..', '..'), { recursive: true, force: true }));
  mkdirSync(join(root, 'dist'), { recursive: true });
  cpSync(join(REPO_ROOT, 'dist', 'server'), join(root, 'dist', 'server'), { recursive: true });
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  const server = await startServerProcess(t, { withoutPreload: true, nodeArgs: ['--trace-opt'], bin: join(root, 'dist', 'server', 'bin', 'launch.cjs') });
  t.equal((await fetch(`${server.origin}/healthz`)).status, 200, 'it serves');
  t.equal(await server.stop(), 0, 'it stops cleanly');
  t.same(turbofanLines(server.output()), [], 'no function was marked for or compiled by Turbofan');
});

/** How many batches of functions V8's baseline compiler (Sparkplug) compiled, by its `--trace-baseline-batch-compilation` output. */
function sparkplugBatches(output: string): number {
  return output.split('\n').filter((line) => line.startsWith('[Baseline batch compilation] Compiling')).length;
}

/** Fewer baseline batches than a start compiles with Sparkplug on (64 here; 5 with it off, node's own start before the launcher's first line). */
const START_BATCHES = 20;

t.test('a default start leaves the baseline compiler off until it listens', async (t) => {
  // What Sparkplug compiles for code that runs only at start stays resident: ~0.5 MiB of an idle
  // server (docs/performance.md, "Idle memory: no baseline compilation at start").
  const server = await startServerProcess(t, { withoutPreload: true, nodeArgs: ['--trace-baseline-batch-compilation'] });
  t.equal((await fetch(`${server.origin}/healthz`)).status, 200, 'it serves');
  t.equal(await server.stop(), 0, 'it stops cleanly');
  const batches = sparkplugBatches(server.output());
  t.ok(batches < START_BATCHES, `${batches} batches compiled`);
});

t.test('once it listens, the server optimizes what its load makes hot', async (t) => {
  const server = await startServerProcess(t, { withoutPreload: true, nodeArgs: ['--trace-opt', '--trace-baseline-batch-compilation'] });
  let answered = 0;
  for (let i = 0; i < 3000; i++) {
    const res = await fetch(`${server.origin}/v1/_q`);
    await res.arrayBuffer();
    if (res.status === 200) answered++;
  }
  t.equal(answered, 3000, 'every query answered');
  t.equal(await server.stop(), 0, 'it stops cleanly');
  t.not(turbofanLines(server.output()).length, 0, 'Turbofan compiled functions under load');
  const batches = sparkplugBatches(server.output());
  t.ok(batches >= START_BATCHES, `and Sparkplug ${batches} batches`);
});
