/**
 * The installed `bindle` command (client/dist/bindle.cjs, built from client/bin/launch.cts) sizes
 * libuv's thread pool before anything can start it: it sets UV_THREADPOOL_SIZE to 16 unless the
 * environment sets it, before it imports the CLI's ES module (whose loading starts the pool),
 * loading nothing first; and the CLI then runs as before.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_BIN } from '../helpers/server-process.js';

const run = promisify(execFile);

if (!existsSync(CLI_BIN)) throw new Error(`build first (npm run build): ${CLI_BIN} is missing`);

t.test('the launcher sets the pool size before it imports the CLI, and loads nothing else first', async (t) => {
  t.match(CLI_BIN, /bindle\.cjs$/, 'the command as installed is the launcher');
  const launcher = readFileSync(CLI_BIN, 'utf8');
  const assignment = launcher.indexOf('process.env.UV_THREADPOOL_SIZE ??=');
  t.ok(assignment > 0, 'it sets UV_THREADPOOL_SIZE only when the environment does not');
  t.ok(assignment < launcher.indexOf('import(CLI_MODULE)'), 'before it imports the CLI');
  t.same([...launcher.matchAll(/\b(?:require|import)\(/g)].length, 1, 'and it loads nothing else');
});

t.test('the CLI runs with a pool of 16 threads, or the size the environment gives', async (t) => {
  const probe = join(t.testdir(), 'probe.cjs');
  // Preloaded before the launcher: reports, at exit, the pool size the process ran with.
  writeFileSync(probe, "process.on('exit', () => process.stderr.write(`pool=${String(process.env.UV_THREADPOOL_SIZE)}\\n`));\n");
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  const plain = await run(process.execPath, ['--require', probe, CLI_BIN, '--version'], { env, timeout: 120_000 });
  t.match(plain.stdout, /^\d+\.\d+\.\d+/, 'bindle --version answers');
  t.match(plain.stderr, /pool=16\n/);
  const given = await run(process.execPath, ['--require', probe, CLI_BIN, '--help'], { env: { ...env, UV_THREADPOOL_SIZE: '3' }, timeout: 120_000 });
  t.match(given.stdout, /Usage: bindle/, 'bindle --help answers');
  t.match(given.stderr, /pool=3\n/, 'an explicit UV_THREADPOOL_SIZE wins');
});
