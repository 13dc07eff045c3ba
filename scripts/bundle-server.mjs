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
import { NODE_BUNDLE_OPTIONS } from './bundle-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'server', 'bundle');

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { 'bindle-server': 'server/bin/bindle-server.ts' },
  outdir,
  ...NODE_BUNDLE_OPTIONS,
  external: ['better-sqlite3', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'],
});
