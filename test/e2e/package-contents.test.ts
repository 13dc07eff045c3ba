/**
 * What the packages ship and install: the root package holds only what runs (no tests, no bench
 * results), the client package (client/, an npm workspace) installs from its tarball alone —
 * offline, with no dependencies and so without compiling better-sqlite3 — and its `bindle`
 * runs, and a TypeScript project type-checks against its declarations (client/dist/index.d.ts,
 * one file needing only @types/node); no installed package requires a newer Node than this one (no EBADENGINE warning), and
 * none the packages run with requires a newer Node than package.json's engines allow.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import semver from 'semver';
import { REPO_ROOT } from '../helpers/paths.js';

const run = promisify(execFile);
const NPM_TIMEOUT = { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 };

interface PackResult {
  filename: string;
  files: { path: string }[];
}

async function pack(args: string[], cwd: string): Promise<PackResult> {
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', ...args], { cwd, ...NPM_TIMEOUT });
  const [result] = JSON.parse(stdout) as PackResult[];
  if (result === undefined) throw new Error(`npm pack ${args.join(' ')} reported nothing`);
  return result;
}

t.test('the root package ships what runs, and no tests or bench results', async (t) => {
  const { files } = await pack(['--dry-run'], REPO_ROOT);
  const paths = files.map((f) => f.path);
  for (const entry of ['dist/server/bin/launch.cjs', 'dist/server/bundle/bindle-server.mjs', 'client/dist/bindle.cjs', 'client/dist/bindle.mjs', 'client/dist/bindle-kubelet.mjs', 'dist/package.json', 'README.md']) {
    t.ok(paths.includes(entry), `ships ${entry}`);
  }
  t.ok(paths.some((p) => /^dist\/schema\/.+\.schema\.json$/.test(p)), 'ships the JSON Schemas');
  t.same(paths.filter((p) => p.startsWith('dist/client/')), [], "the CLI ships once, as client/dist's bundles, not also as tsc's dist/client");
  for (const unwanted of [/^test\//, /^dist\/test\//, /^bench\//, /^dist\/bench\//, /^fixtures\//, /\.ts$/]) {
    t.same(paths.filter((p) => unwanted.test(p) && !p.endsWith('.d.ts')), [], `nothing matching ${String(unwanted)}`);
  }
});

t.test('the client package installs offline from its tarball with no native build, and bindle runs', async (t) => {
  const dir = t.testdir({ app: { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', private: true }) } });
  t.ok(existsSync(join(REPO_ROOT, 'client', 'dist', 'bindle.cjs')), 'client/dist is built (npm run build)');
  const tarball = await pack(['-w', 'client', '--pack-destination', dir], REPO_ROOT);
  t.same(tarball.files.filter((f) => !f.path.startsWith('dist/') && f.path !== 'package.json').map((f) => f.path), [], 'only the bundle and the manifest');
  const bundled = readdirSync(join(REPO_ROOT, 'client', 'dist')).filter((f) => f.endsWith('.mjs')).map((f) => readFileSync(join(REPO_ROOT, 'client', 'dist', f), 'utf8'));
  t.ok(bundled.some((text) => text.includes('// standalone-validators:schema/validators.standalone.cjs')), 'the bundle carries the schema validators compiled ahead of time');
  t.notOk(bundled.some((text) => text.includes('// node_modules/ajv/dist/compile/')), "and not Ajv's compiler");
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'client', 'package.json'), 'utf8')) as Record<string, unknown>;
  t.equal(manifest.dependencies, undefined, 'the client package depends on nothing');

  const app = join(dir, 'app');
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(dir, tarball.filename)], { cwd: app, ...NPM_TIMEOUT });
  t.same(readdirSync(join(app, 'node_modules')).filter((d) => !d.startsWith('.')), ['bindle-ts-client'], 'nothing else is installed');
  const version = await run(join(app, 'node_modules', '.bin', 'bindle'), ['--version'], { cwd: app, ...NPM_TIMEOUT });
  t.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  const lib = await run(process.execPath, ['--input-type=module', '-e', "import { BindleClient } from 'bindle-ts-client'; console.log(typeof BindleClient)"], { cwd: app, ...NPM_TIMEOUT });
  t.equal(lib.stdout.trim(), 'function', 'the client library is importable');

  t.ok(tarball.files.some((f) => f.path === 'dist/index.d.ts'), 'the declarations are packed');
  // A consumer type-checks against the installed package, with only @types/node besides it.
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true,
      types: ['node'], typeRoots: [join(REPO_ROOT, 'node_modules', '@types')],
    },
    files: ['use.ts'],
  }));
  const consumer = [
    "import { BindleClient, BindleError, Keyring, parseStrategy, type Invoice, type Label } from 'bindle-ts-client';",
    "const client = new BindleClient({ baseUrl: 'http://127.0.0.1:8080/v1/', keyring: new Keyring(), strategy: parseStrategy('CreativeIntegrity') });",
    'export async function names(): Promise<string[]> {',
    "  const reply = await client.query({ query: 'example.com' });",
    '  return reply.invoices.map((invoice: Invoice) => invoice.bindle.name);',
    '}',
    'export const sizes = (labels: Label[]): number[] => labels.map((l) => l.size);',
    "export const missing = (err: unknown): boolean => err instanceof BindleError && err.code === 'not_found';",
  ];
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  writeFileSync(join(app, 'use.ts'), `${consumer.join('\n')}\n`);
  const typeCheck = (): Promise<string> => run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, ...NPM_TIMEOUT }).then(
    () => '',
    (err: unknown) => (err instanceof Error && 'stdout' in err ? String(err.stdout) : String(err)) || 'tsc failed',
  );
  t.equal(await typeCheck(), '', 'a consumer type-checks against the packed declarations');
  writeFileSync(join(app, 'use.ts'), `${consumer.join('\n')}\nexport const wrong: number = client.baseUrl;\n`);
  t.match(await typeCheck(), /use\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/, 'the types are real: a misuse is an error');
});

t.test('every locked package supports this Node, and runtime ones the oldest Node engines allow', async (t) => {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { engines?: Record<string, string> | string[]; dev?: boolean; version?: string }>;
  };
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
  const oldest = semver.minVersion(pkg.engines.node)?.version ?? '';
  const tooNew: string[] = [];
  const runtimeTooNew: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
    if (range === undefined) continue;
    if (!semver.satisfies(process.versions.node, range)) tooNew.push(`${path}@${entry.version ?? '?'} (${range})`);
    if (entry.dev !== true && !semver.satisfies(oldest, range)) runtimeTooNew.push(`${path}@${entry.version ?? '?'} (${range})`);
  }
  t.same(tooNew, [], `nothing prints EBADENGINE on Node ${process.versions.node}`);
  t.same(runtimeTooNew, [], `every runtime dependency runs on Node ${oldest}`);
  const cookies = Object.entries(lock.packages).filter(([path]) => path.endsWith('node_modules/cookie'));
  t.ok(cookies.length > 0, 'cookie is in the tree (via fastify → light-my-request)');
  for (const [path, entry] of cookies) t.match(entry.version, /^1\./, `${path} is pinned to 1.x by overrides (2.x requires Node 22)`);
});
