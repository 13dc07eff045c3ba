// Bundles the client entry points, `bindle` (client/bin/bindle.ts) and `bindle-kubelet`
// (client/bin/bindle-kubelet.ts), with esbuild into dist/client/bundle/*.mjs: the files the
// package's `bin`, the end-to-end tests and the benchmarks run. As with the server bundle
// (scripts/bundle-server.mjs), one pre-linked file starts much faster than the module graph tsc
// emits. Code splitting keeps what a command loads on demand (the HTTP stack, tar, the
// media-type database) in chunks that `bindle --version`, help and usage errors never read.
// No native addon is involved: the client never loads better-sqlite3.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { NODE_BUNDLE_OPTIONS } from './bundle-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'client', 'bundle');

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { bindle: 'client/bin/bindle.ts', 'bindle-kubelet': 'client/bin/bindle-kubelet.ts' },
  outdir,
  ...NODE_BUNDLE_OPTIONS,
});
