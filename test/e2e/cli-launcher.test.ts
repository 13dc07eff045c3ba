/**
 * The installed `bindle` command (client/dist/bindle.cjs, built from client/bin/launch.cts) sizes
 * libuv's thread pool before anything can start it: it sets UV_THREADPOOL_SIZE to 16 unless the
 * environment sets it, before it imports the CLI's ES module (whose loading starts the pool),
 * loading nothing first; and the CLI then runs as before. A command keeps WebAssembly (undici's
 * HTTP parser) on V8's baseline compiler: nothing is compiled with TurboFan, whose background
 * compilation of the parser held every command's exit; `--version`, which compiles none, does
 * not load node:v8 to say so. A command talking to a server loads only the parts of undici it
 * uses (scripts/bundle-client.mjs), not the package's index, which also loads Node's own undici
 * through the `Headers` global.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { isolatedEnv, trustSetup } from '../helpers/cli-runner.js';
import { serveLocally } from '../helpers/local-server.js';
import { CLI_BIN } from '../helpers/server-process.js';

const run = promisify(execFile);

if (!existsSync(CLI_BIN)) throw new Error(`build first (npm run build): ${CLI_BIN} is missing`);

t.test('the launcher sets the pool size before it imports the CLI, and loads nothing else first', async (t) => {
  t.match(CLI_BIN, /bindle\.cjs$/, 'the command as installed is the launcher');
  const launcher = readFileSync(CLI_BIN, 'utf8');
  const assignment = launcher.indexOf('process.env.UV_THREADPOOL_SIZE ??=');
  const cli = launcher.indexOf('import(CLI_MODULE)');
  t.ok(assignment > 0, 'it sets UV_THREADPOOL_SIZE only when the environment does not');
  t.ok(assignment < cli, 'before it imports the CLI');
  const loads = [...launcher.matchAll(/\b(require|import)\(([^)]*)\)/g)].map((m) => `${m[1] ?? ''}(${m[2] ?? ''})`);
  t.same(loads, ['import(CLI_MODULE)'], 'and it loads nothing else');
});

t.test('the CLI runs with a pool of 16 threads, or the size the environment gives', async (t) => {
  const probe = join(t.testdir(), 'probe.cjs');
  // Preloaded before the launcher: reports, at exit, the pool size the process ran with and
  // whether node:v8 was loaded.
  writeFileSync(
    probe,
    "process.on('exit', () => process.stderr.write(`pool=${String(process.env.UV_THREADPOOL_SIZE)}\\n` +\n" +
      "  `v8=${process.moduleLoadList.includes('NativeModule v8') ? 'loaded' : 'unloaded'}\\n`));\n",
  );
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  const plain = await run(process.execPath, ['--require', probe, CLI_BIN, '--version'], { env, timeout: 120_000 });
  t.match(plain.stdout, /^\d+\.\d+\.\d+/, 'bindle --version answers');
  t.match(plain.stderr, /pool=16\n/);
  t.match(plain.stderr, /v8=unloaded\n/, '--version does not load node:v8');
  const given = await run(process.execPath, ['--require', probe, CLI_BIN, '--help'], { env: { ...env, UV_THREADPOOL_SIZE: '3' }, timeout: 120_000 });
  t.match(given.stdout, /Usage: bindle/, 'bindle --help answers');
  t.match(given.stderr, /pool=3\n/, 'an explicit UV_THREADPOOL_SIZE wins');
});

t.test('a get loads only the parts of undici the client uses, never the Headers global (Node\'s own undici), and compiles no WebAssembly with TurboFan', async (t) => {
  const dir = t.testdir();
  const data = Buffer.from('a parcel\n');
  const invoice = renderInvoice(signedInvoice('example.com/parts', '1.0.0', [{ name: 'a.txt', data }]));
  const url = await serveLocally(t, (req, res) => {
    const body = req.url?.includes('@') === true ? data : Buffer.from(invoice);
    res.writeHead(200, { 'content-type': req.url?.includes('@') === true ? 'application/octet-stream' : 'application/toml', 'content-length': String(body.length) });
    res.end(body);
  });
  const probe = join(dir, 'probe.cjs');
  // Preloaded before the launcher: reports, at exit, whether anything read the Headers global
  // (undici's index does, at load; Node then loads its own undici).
  writeFileSync(
    probe,
    "const d = Object.getOwnPropertyDescriptor(globalThis, 'Headers'); let read = false;\n" +
      "Object.defineProperty(globalThis, 'Headers', { ...d, get() { read = true; return d.get.call(this); } });\n" +
      "process.on('exit', () => process.stderr.write(`headers=${read ? 'read' : 'untouched'}\\n`));\n",
  );
  const trust = trustSetup(join(dir, 'trust'));
  // V8 reports each WebAssembly function it compiles, and with which compiler, on stdout.
  const args = ['--require', probe, '--trace-wasm-compilation-times', CLI_BIN, '-s', `${url}/v1/`, '-r', trust.clientKeyringPath, '--strategy', 'CreativeIntegrity', '-d', join(dir, 'cache'), 'get', 'example.com/parts/1.0.0'];
  const got = await run(process.execPath, args, { env: isolatedEnv(join(dir, 'home')), timeout: 120_000 });
  t.match(got.stdout, /1 parcel\(s\) downloaded/, 'the get succeeds');
  t.match(got.stderr, /headers=untouched\n/);
  t.match(got.stdout, /using Liftoff/, 'the HTTP parser is compiled with Liftoff');
  t.notMatch(got.stdout, /using TurboFan/, 'and nothing with TurboFan');
  t.notMatch(got.stderr, /unrecognized flag/, 'V8 knows the flag');
  const kept = join(dir, 'cache', canonicalId({ name: 'example.com/parts', version: '1.0.0' }), 'parcels', `${sha256(data)}.dat`);
  t.same(readFileSync(kept), data, 'the parcel is kept');
});
