// The esbuild plugin both bundles share (scripts/bundle-server.mjs, scripts/bundle-client.mjs):
// schema/validators.ts (Ajv compiling each schema on first use) is replaced by the source
// schema/standalone-validators.ts generates from the same schemas, compiled ahead of time by Ajv's
// standalone code generation (run from dist/, which the build's tsc step has just written). So no
// bundle loads Ajv's compiler or compiles a schema: a `bindle` command saves ~50 ms of a push of
// 1000 parcels, and the server neither loads Ajv (~0.4 MB of source and code) nor keeps the code
// of run-time compiled validators. test/unit/standalone-validators.test.ts checks that both agree.
import { join } from 'node:path';
import { standaloneValidatorsSource } from '../dist/schema/standalone-validators.js';

/**
 * Resolves schema/validators.ts (under `root`) to the validators compiled ahead of time: a
 * CommonJS module (`.cjs`, so that the root package's "type": "module" does not apply).
 */
export function standaloneValidatorsPlugin(root) {
  return {
    name: 'standalone-validators',
    setup(b) {
      const file = join(root, 'schema', 'validators.ts');
      b.onResolve({ filter: /^\.\/validators\.js$/ }, (args) => {
        if (join(args.resolveDir, 'validators.ts') !== file) return undefined;
        return { path: 'schema/validators.standalone.cjs', namespace: 'standalone-validators' };
      });
      b.onLoad({ filter: /.*/, namespace: 'standalone-validators' }, () => ({
        contents: standaloneValidatorsSource(join(root, 'schema', 'schemas.ts')),
        loader: 'js',
        resolveDir: join(root, 'schema'),
      }));
    },
  };
}
