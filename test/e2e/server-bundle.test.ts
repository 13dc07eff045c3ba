/**
 * The built server bundle (scripts/bundle-server.mjs, run by `npm run build`) is pure ASCII, so
 * that V8 holds each of its modules' source text one byte per character, not two: a single
 * non-Latin-1 character in a comment doubled the memory the 1.4 MB bundle's text took. And what
 * a default start does not use stays out of the modules it loads (the entry and the chunks it
 * imports statically): every module loaded is held in memory for the life of the process. The
 * launcher (dist/server/bin/launch.cjs) keeps the young generation small before it loads the bundle.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

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

t.test('the server bundle is not minified (whitespace minification doubled the CPU of a big download)', (t) => {
  const text = readFileSync(join(BUNDLE_DIR, 'bindle-server.mjs'), 'utf8');
  const longest = Math.max(...text.split('\n').map((line) => line.length));
  t.ok(text.split('\n').length > 1000, 'one statement per line, as esbuild writes unminified code');
  t.ok(longest < 20_000, `no line is a whole module (longest: ${longest} characters)`);
  t.end();
});

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
  t.same([...launcher.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]), ['node:v8'], 'and it loads nothing else first');
  t.end();
});

t.test('a default start does not load the optional backends, authenticators, OpenAPI document or key generation', (t) => {
  const loaded = startupModules();
  t.ok(loaded.size > 1, `the entry imports its chunks (${[...loaded.keys()].join(', ')})`);
  const all = readdirSync(BUNDLE_DIR).filter((name) => name.endsWith('.mjs')).map((name) => readFileSync(join(BUNDLE_DIR, name), 'utf8'));
  // Text only that library's code contains; each library is in the bundle, loaded on first use.
  const lazy: ReadonlyArray<readonly [string, string]> = [
    ['bcryptjs (htpasswd)', 'Illegal number of rounds'],
    ['jose (OIDC)', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
    ['pg (PostgreSQL index)', 'import("pg")'],
    ['the AWS SDK (S3 parcel store)', 'import("@aws-sdk/client-s3")'],
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
