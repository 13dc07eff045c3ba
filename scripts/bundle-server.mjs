// Bundles the bindle-server entry point (server/bin/bindle-server.ts) with esbuild into
// dist/server/bundle/bindle-server.mjs, the file `npm start`, the package's `bin`, the Docker
// image, the end-to-end tests and the benchmarks run. One pre-linked file needs about 40% less
// start-up time than the module graph tsc emits (dist/server/bin/), most of whose start goes to
// resolving and reading hundreds of files. What a default start does not run stays out of it:
// - better-sqlite3 (a native addon) is loaded from node_modules;
// - the htpasswd and OIDC authenticators (bcryptjs, jose) are imported dynamically by
//   server/auth/build-auth.ts, so they land in chunks loaded only when configured;
// - Fastify's schema compilers and its inject() support are required by Fastify only on demand
//   (server/app.ts replaces the compilers), so they stay external and load only if ever used.
// Not minified, so stack traces keep real names; with source maps (`node --enable-source-maps`,
// which costs start-up time and is therefore off by default) they point into the TypeScript.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'server', 'bundle');

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  // Worker threads are entries of their own: core/worker-pool.ts starts each from beside its pool.
  entryPoints: {
    'bindle-server': 'server/bin/bindle-server.ts',
    'bcrypt-worker': 'server/auth/bcrypt-worker.ts',
    'invoice-worker': 'core/codec/invoice-worker.ts',
  },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  external: ['better-sqlite3', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'],
  // Bundled CommonJS packages call require() for Node built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as __bindleCreateRequire } from 'node:module'; const require = __bindleCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
