/**
 * File confinement of module processes, with real modules: the cat fixture (path_open without
 * following symlinks) and a variant built here that follows them, run in the kubelet's module
 * runtime with a data directory preopened at /data. Every way out — `..`, `/data/..`, an
 * absolute host path, a symlink to a host file (absolute or relative), a symlink to a host
 * directory — must end in a WASI error (cat exits 2), never in the secret's bytes. Needs
 * bubblewrap (skipped with the reason when it is not installed, except under CI=true).
 */
import t, { type Test } from 'tap';
import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startModule, type ModuleExit } from '../../client/kubelet/runner.js';
import { assembleWat, WASM_FIXTURES_DIR } from '../../scripts/build-wasm-fixtures.js';
import { moduleRuntime, wasm } from '../helpers/kubelet-env.js';

const SECRET = 'the kubelet key: do not print';

const { runtime, log: runtimeLog } = await moduleRuntime();
if (!runtime.sandbox.confined && process.env.CI !== 'true') {
  t.plan(0, `no sandbox: ${runtimeLog.join('; ')}`);
  process.exit(0);
}

/** cat.wat with lookupflags SYMLINK_FOLLOW on its path_open. */
async function catFollowingSymlinks(): Promise<Uint8Array> {
  const source = await readFile(join(WASM_FIXTURES_DIR, 'cat.wat'), 'utf8');
  const open = '(call $path_open (i32.const 3) (i32.const 0)';
  if (!source.includes(open)) throw new Error('cat.wat changed: update the symlink-following variant');
  return assembleWat(source.replace(open, '(call $path_open (i32.const 3) (i32.const 1)'), 'cat-follow.wat');
}

/** A host tree: `<dir>/data` (the preopen, with traps in it) and `<dir>/outside/secret.txt`. */
function hostTree(t: Test): { data: string; secret: string } {
  const dir = t.testdir({ outside: { 'secret.txt': `${SECRET}\n` }, data: { 'message.txt': 'inside\n' } });
  const data = join(dir, 'data');
  const secret = join(dir, 'outside', 'secret.txt');
  symlinkSync(secret, join(data, 'abs-link'));
  symlinkSync('../outside/secret.txt', join(data, 'rel-link'));
  symlinkSync(join(dir, 'outside'), join(data, 'dir-link'));
  mkdirSync(join(data, 'sub'));
  symlinkSync('../../outside/secret.txt', join(data, 'sub', 'deep-link'));
  return { data, secret };
}

async function cat(t: Test, module: Uint8Array, data: string, path: string): Promise<{ exit: ModuleExit; log: string }> {
  const logPath = join(data, '..', `${Math.random().toString(16).slice(2)}.log`);
  const fd = openSync(logPath, 'w');
  try {
    const running = await startModule(
      { module, args: ['cat.wasm', path], env: {}, preopens: { '/data': data }, stdin: 'ignore', stdout: fd, stderr: fd },
      { runtime, name: 'sandbox-test' },
    );
    return { exit: await running.exited, log: readFileSync(logPath, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

t.test('a module reads its own /data', async (t) => {
  const { data } = hostTree(t);
  const { exit, log } = await cat(t, await wasm('cat'), data, 'message.txt');
  t.same(exit, { exitCode: 0, reason: 'Completed' });
  t.equal(log, 'inside\n');
});

t.test('no way out of /data', async (t) => {
  const { data, secret } = hostTree(t);
  const modules = { 'cat (no follow)': await wasm('cat'), 'cat (follows symlinks)': await catFollowingSymlinks() };
  const escapes = ['../outside/secret.txt', '/data/../outside/secret.txt', secret, 'abs-link', 'rel-link', 'dir-link/secret.txt', 'sub/deep-link', 'sub/../../outside/secret.txt'];
  for (const [kind, module] of Object.entries(modules)) {
    for (const path of escapes) {
      const { exit, log } = await cat(t, module, data, path);
      t.same(exit, { exitCode: 2, reason: 'Error' }, `${kind}: ${path}: a WASI error`);
      t.equal(log, 'cat: cannot open the file\n', `${kind}: ${path}: never the file`);
    }
  }
  writeFileSync(join(data, 'message.txt'), 'still inside\n');
  const { log } = await cat(t, await catFollowingSymlinks(), data, 'message.txt');
  t.equal(log, 'still inside\n', 'the same module still reads /data');
});

t.test('the data directory is read-only for the module, even as root', async (t) => {
  const { data } = hostTree(t);
  // path_open(dirfd 3, 0, "new.txt", O_CREAT, rights fd_write, 0, 0) then exit with its errno.
  const create = await assembleWat(`(module
    (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (data (i32.const 64) "new.txt")
    (func (export "_start")
      (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 7) (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))))`);
  const fd = openSync(join(t.testdirName, 'create.log'), 'w');
  t.teardown(() => closeSync(fd));
  const running = await startModule(
    { module: create, args: ['create.wasm'], env: {}, preopens: { '/data': data }, stdin: 'ignore', stdout: fd, stderr: fd },
    { runtime, name: 'sandbox-test' },
  );
  const exit = await running.exited;
  t.not(exit.exitCode, 0, `creating a file fails (WASI errno ${exit.exitCode})`);
  t.throws(() => readFileSync(join(data, 'new.txt')), { code: 'ENOENT' }, 'nothing was created');
});
