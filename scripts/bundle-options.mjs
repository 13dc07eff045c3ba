// The esbuild options every bundled entry point shares (scripts/bundle-server.mjs,
// scripts/bundle-clients.mjs): ES modules for Node 20 with code splitting, `.mjs` files, source
// maps, not minified (stack traces keep real names).
export const NODE_BUNDLE_OPTIONS = {
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Bundled CommonJS packages call require() for Node built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as __bindleCreateRequire } from 'node:module'; const require = __bindleCreateRequire(import.meta.url);" },
  logLevel: 'warning',
};
