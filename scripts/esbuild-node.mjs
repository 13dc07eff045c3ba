// The esbuild options both bundles share (scripts/bundle-server.mjs, scripts/bundle-client.mjs):
// ES module bundles for Node 20 with split chunks, `.mjs` files and source maps, not minified here
// (scripts/bundle-server.mjs minifies the server bundle's whitespace); and the plugin both use to
// require Node's built-ins rather than import them.
import { createRequire, isBuiltin } from 'node:module';

const requireHere = createRequire(import.meta.url);

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

/**
 * Makes the bundle require the Node built-ins its code imports (`import { createHash } from
 * 'node:crypto'`), through the banner's `require`. For an ES module import of a built-in, Node
 * builds a facade module that reads every export of the built-in, and so runs the getters behind
 * which built-ins load what they seldom need, such as `crypto.webcrypto`, `util.MIMEType` and
 * `util.parseArgs`: four built-in modules that every server start loaded for nothing.
 * Each import resolves instead to a module that requires the built-in and exports each of its
 * names as a read of that name, marked pure, so that esbuild drops the reads no code uses: a
 * name is read once, when the bundle loads, and only if imported somewhere. That is what the
 * facade gives an importer too (a snapshot of the export; nothing here reassigns a built-in's
 * exports). The banner's own import of node:module stays. Measured (docs/performance.md, "Idle
 * memory: built-ins required, not imported"): a fresh server's idle RSS ~0.2 MiB lower.
 */
export const builtinsRequired = {
  name: 'builtins-required',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) =>
      args.kind === 'import-statement' && isBuiltin(args.path) ? { path: args.path, namespace: 'builtin-required' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin-required' }, (args) => {
      // The names as this Node (the one that builds, and that runs the bundle) exports them.
      const names = Object.getOwnPropertyNames(requireHere(args.path)).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default');
      return {
        contents: [
          `const builtin$ = require(${JSON.stringify(args.path)});`,
          'const read$ = (name) => builtin$[name];',
          'export default builtin$;',
          ...names.map((name) => `export const ${name} = /* @__PURE__ */ read$(${JSON.stringify(name)});`),
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};
