// Bundles the client side (the `bindle` CLI, `bindle-kubelet` and the client library) with
// esbuild into client/dist/, the contents of the separate client package (client/package.json,
// an npm workspace). Everything it uses is pure JavaScript and is bundled in, so the client
// package has no dependencies: installing it never compiles the server's native better-sqlite3
// and needs no C++ toolchain. The root package (server, CLI and kubelet together) is unchanged.
// The library's type declarations go into client/dist/index.d.ts as one file (dts-bundle-generator),
// with the types it uses from undici inlined (not exported), since the package installs no undici: a
// TypeScript user needs only @types/node.
// The schema validators are compiled ahead of time (scripts/standalone-validators-plugin.mjs), so
// that no command loads Ajv or compiles a schema (~50 ms of a `bindle push` of 1000 parcels).
// Likewise only the parts of undici the client uses are loaded up front (UNDICI_ENTRY below).
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateDtsBundle } from 'dts-bundle-generator';
import { build } from 'esbuild';
import { builtinsRequired, NODE_BUNDLE_OPTIONS } from './esbuild-node.mjs';
import { standaloneValidatorsPlugin } from './standalone-validators-plugin.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'client', 'dist');

/**
 * What the client's imports of 'undici' resolve to: Agent, and Dispatcher with the request API
 * that undici's index adds to every dispatcher (the client calls `dispatcher.request`), loaded
 * at once; the other names the client imports load the whole package on first use. The
 * package's index loads all of undici (fetch, WebSocket, caches, mocks, and Node's own copy of
 * undici, through the `Headers` global): ~70 ms of CPU in the bundle against ~35 for these
 * parts, paid by every command that talks to a server. A name not listed here is undefined:
 * list it, as a getter, when the client starts importing it.
 */
const UNDICI_ENTRY = `
const Dispatcher = require('undici/lib/dispatcher/dispatcher');
Object.assign(Dispatcher.prototype, require('undici/lib/api'));
module.exports = {
  Agent: require('undici/lib/dispatcher/agent'),
  Dispatcher,
  get interceptors() { return require('undici').interceptors; },
  get request() { return require('undici').request; },
};
`;
const undiciParts = {
  name: 'undici-parts',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, (args) => (args.namespace === 'undici-parts' ? undefined : { path: 'undici', namespace: 'undici-parts' }));
    b.onLoad({ filter: /.*/, namespace: 'undici-parts' }, () => ({ contents: UNDICI_ENTRY, loader: 'js', resolveDir: root }));
  },
};

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: {
    bindle: 'client/bin/bindle.ts',
    'bindle-kubelet': 'client/bin/bindle-kubelet.ts',
    index: 'client/lib/index.ts',
  },
  outdir,
  ...NODE_BUNDLE_OPTIONS,
  plugins: [standaloneValidatorsPlugin(root), undiciParts, builtinsRequired],
});
// The `bindle` command is a CommonJS launcher that sizes libuv's thread pool before it loads the
// CLI (see client/bin/launch.cts): compiled on its own, not bundled, its import() kept as it is.
await build({
  absWorkingDir: root,
  entryPoints: { bindle: 'client/bin/launch.cts' },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: false,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
for (const bin of ['bindle.cjs', 'bindle.mjs', 'bindle-kubelet.mjs']) chmodSync(join(outdir, bin), 0o755);

const [declarations] = generateDtsBundle(
  [{ filePath: join(root, 'client', 'lib', 'index.ts'), libraries: { inlinedLibraries: ['undici'] }, output: { noBanner: true, exportReferencedTypes: false } }],
  { preferredConfigPath: join(root, 'tsconfig.json') },
);
writeFileSync(join(outdir, 'index.d.ts'), declarations ?? '');
