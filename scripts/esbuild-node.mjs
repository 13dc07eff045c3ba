// The esbuild options both bundles share (scripts/bundle-server.mjs, scripts/bundle-client.mjs):
// ES module bundles for Node 20 with split chunks, `.mjs` files and source maps, not minified here
// (scripts/bundle-server.mjs minifies the server bundle's whitespace).
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
