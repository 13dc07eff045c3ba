// Bundles the bindle-server entry point (server/bin/bindle-server.ts) with esbuild into
// dist/server/bundle/bindle-server.mjs, the file that dist/server/bin/launch.cjs (what `npm start`,
// the package's `bin`, the Docker image, the end-to-end tests and the benchmarks run) loads once it
// has sized libuv's thread pool and stopped the young generation's growth
// (server/bin/launch.cts). One pre-linked file needs about 40% less
// start-up time than the module graph tsc emits (dist/server/bin/), most of whose start goes to
// resolving and reading hundreds of files. What a default start does not run stays out of it:
// - better-sqlite3's native addon is loaded from node_modules (its JavaScript is bundled:
//   sqliteAddon below);
// - pg (node-postgres) is loaded only when a PostgreSQL index is opened
//   (server/storage/postgres-invoice-index.ts imports it dynamically), the AWS SDK only when an
//   S3 parcel store is opened (server/storage/s3-parcel-store.ts, through s3-sdk.ts): both are in chunks of their
//   own. Loaded from node_modules instead, their CommonJS files went through Node's module
//   resolution and, imported from ES modules, its CommonJS export lexer, which ran often enough
//   at every start for V8 to optimize a dozen functions with Turbofan: ~7 MiB more idle RSS on
//   PostgreSQL + S3 (docs/performance.md, "Idle memory on PostgreSQL + S3");
// - of the AWS SDK, only what the S3 store uses: packages are taken from their ES module build
//   where they have one (`mainFields`: `module` before `main`), which esbuild can tree-shake, and
//   the store imports the SDK's names from server/storage/s3-sdk.ts, so the ~100 commands,
//   serializers and error classes it never sends stay out (the text an S3 store's chunks load
//   statically: 0.99 -> 0.54 MB; ~1 MiB less idle RSS). Of the other packages, only bowser (the
//   SDK's, in a chunk a server never loads) resolves differently; the entry's text is unchanged;
// - the htpasswd and OIDC authenticators (bcryptjs, jose) are imported dynamically by
//   server/auth/build-auth.ts, so they land in chunks loaded only when configured;
// - Fastify's schema compilers and its inject() support are required by Fastify only on demand
//   (server/app.ts replaces the compilers), so they stay external and load only if ever used;
// - Ajv: the schema validators are compiled at build time (scripts/standalone-validators-plugin.mjs);
// - node:http2 and node:https, which Fastify and prom-client require at load, are loaded on first
//   use; so is @opentelemetry/api, which prom-client requires at load for exemplars the server
//   never enables; it stays out of the bundle and is loaded from node_modules if ever used
//   (LAZY_MODULES below);
// - Node's built-ins are required, not imported (builtinsRequired, scripts/esbuild-node.mjs): an
//   import builds a facade that reads every export, which loads webcrypto, MIMEType and parseArgs.
// Whitespace is minified: comments, indentation and line breaks go, names stay (stack traces and
// pino's error `type` keep real names; with source maps, `node --enable-source-maps`, which costs
// start-up time and is therefore off by default, they point into the TypeScript). V8 holds the
// entry's text for the life of the process (1.33 -> 0.87 MB); the download CPU an earlier
// measurement blamed on minifying did not reproduce (docs/performance.md, "Idle memory: a
// whitespace-minified bundle, a lazy @opentelemetry/api").
// Every file is made pure ASCII: V8 keeps a module's source text in memory as long as the module
// lives, one byte per character when every character is Latin-1 but two when one is not (a `→`
// in a comment made the 1.4 MB bundle a 2.8 MB string). esbuild escapes such characters in
// strings but leaves them in comments and template literals; they become `\uXXXX` escapes
// there, which mean the same characters (no code here reads a template's `.raw`).
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { builtinsRequired, NODE_BUNDLE_OPTIONS } from './esbuild-node.mjs';
import { standaloneValidatorsPlugin } from './standalone-validators-plugin.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `node scripts/bundle-server.mjs ENTRY OUTDIR` bundles another entry the same way (for tests of
// what bundling does to a module, e.g. to a CommonJS package it imports).
const [entry, outdir = join(root, 'dist', 'server', 'bundle')] = process.argv.slice(2);

/**
 * Modules that a bundled package requires when it loads but uses only for what a default server
 * never does, by importer: Fastify's server module, for an `http2` or `https` server;
 * prom-client's Pushgateway, to push metrics; prom-client's process CPU metric, for exemplars
 * (`enableExemplars`, which the server does not set). Each is made a proxy that requires the
 * module on first use. Loading node:http2 alone adds ~2 MiB to the idle RSS (nghttp2's state),
 * node:https (with node:tls) ~0.9 MiB. A package here is also external (LAZY_PACKAGES): its
 * code stays out of the bundle's text, and the proxy's require finds it in node_modules.
 * test/e2e/server-bundle.test.ts checks that a started server has loaded none of them.
 */
const LAZY_MODULES = new Map([
  ['node_modules/fastify/lib/server.js', ['node:http2', 'node:https']],
  ['node_modules/prom-client/lib/pushgateway.js', ['https']],
  ['node_modules/prom-client/lib/metrics/processCpuTotal.js', ['@opentelemetry/api']],
]);

const LAZY_NAMES = [...new Set([...LAZY_MODULES.values()].flat())];
/** The packages (not built-ins) of LAZY_MODULES: external to the bundle. */
const LAZY_PACKAGES = LAZY_NAMES.filter((name) => !isBuiltin(name));

/** Resolves the modules of LAZY_MODULES, from their importers, to lazy proxies. */
const lazyModules = {
  name: 'lazy-modules',
  setup(b) {
    const names = new RegExp(`^(?:${LAZY_NAMES.map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter: names }, (args) => {
      const importer = relative(root, args.importer).split(sep).join('/');
      if (!(LAZY_MODULES.get(importer)?.includes(args.path) ?? false)) return undefined;
      return { path: args.path, namespace: 'lazy-module' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-module' }, (args) => ({
      contents: [
        'let real;',
        `const load = () => (real ??= require(${JSON.stringify(args.path)}));`,
        'module.exports = new Proxy({}, {',
        '  get: (_, key) => load()[key],',
        '  has: (_, key) => key in load(),',
        '  ownKeys: () => Reflect.ownKeys(load()),',
        '  getOwnPropertyDescriptor: (_, key) => {',
        '    const d = Reflect.getOwnPropertyDescriptor(load(), key);',
        '    return d === undefined ? undefined : { ...d, configurable: true };',
        '  },',
        '});',
      ].join('\n'),
      loader: 'js',
    }));
  },
};

/**
 * better-sqlite3's JavaScript is bundled; only its native addon is loaded from node_modules, by
 * one require of its path in the package instead of the `bindings` package's search. Loaded from
 * node_modules, its 15 CommonJS files (with `bindings` and its dependency) ran node:path's normalizeString
 * often enough, at every start, for V8 to optimize it with Turbofan: that one compilation left
 * ~4.5 MiB of compiler code and memory resident in an idle server (docs/performance.md).
 * test/e2e/server-bundle.test.ts checks that a start optimizes nothing.
 */
const sqliteAddon = {
  name: 'sqlite-addon',
  setup(b) {
    b.onResolve({ filter: /^bindings$/ }, (args) =>
      relative(root, args.importer).split(sep).join('/').startsWith('node_modules/better-sqlite3/') ? { path: 'bindings', namespace: 'sqlite-addon' } : undefined,
    );
    b.onResolve({ filter: /\.node$/ }, (args) => ({ path: args.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'sqlite-addon' }, () => ({
      contents: "module.exports = () => require('better-sqlite3/build/Release/better_sqlite3.node');",
      loader: 'js',
    }));
  },
};

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  // Worker threads are entries of their own: core/worker-pool.ts starts each from beside its pool.
  entryPoints: entry === undefined
    ? {
        'bindle-server': 'server/bin/bindle-server.ts',
        'bcrypt-worker': 'server/auth/bcrypt-worker.ts',
        'invoice-worker': 'core/codec/invoice-worker.ts',
        'sqlite-query-worker': 'server/storage/sqlite-query-worker.ts',
      }
    : { [basename(entry).replace(/\.ts$/, '')]: entry },
  outdir,
  ...NODE_BUNDLE_OPTIONS,
  minifyWhitespace: true,
  // ES module builds first, which esbuild can tree-shake (see the header): for the AWS SDK.
  mainFields: ['module', 'main'],
  plugins: [standaloneValidatorsPlugin(root), lazyModules, sqliteAddon, builtinsRequired],
  // pg-native: node-postgres's optional native binding, required only if asked for (never here).
  external: ['pg-native', ...LAZY_PACKAGES, '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'],
});

for (const name of readdirSync(outdir)) {
  if (!name.endsWith('.mjs')) continue;
  const file = join(outdir, name);
  const text = readFileSync(file, 'utf8');
  // Without the u flag the pattern matches UTF-16 code units: a character outside the BMP
  // becomes its two surrogate escapes, as a string literal spells it.
  const ascii = text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}
