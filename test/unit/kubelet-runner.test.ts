/**
 * Running the fixture modules (fixtures/wasm/*.wat, assembled at test time) in their own
 * sandboxed processes under WASI: output to a log file, args and env, a file parcel read from /data,
 * exit codes, a busy module killed, a module that is not a WASI command, and a cached entry
 * module that no longer matches its label (refused before anything runs).
 */
import t, { type Test } from 'tap';
import { chmodSync, closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Label } from '../../schema/index.js';
import type { ResolvedModule } from '../../client/kubelet/module-store.js';
import { envRecord, launchContainer, startModule, type ModuleExit, type ModuleInvocation, type StartOptions } from '../../client/kubelet/runner.js';
import { expandEnvRefs } from '../../client/kubelet/env-refs.js';
import { assembleWat } from '../../scripts/build-wasm-fixtures.js';
import { sha256 } from '../helpers/bindles.js';
import { moduleRuntime, wasm } from '../helpers/kubelet-env.js';

async function runOpts(): Promise<StartOptions> {
  return { runtime: (await moduleRuntime()).runtime, name: 'runner-test' };
}

function labelOf(name: string, data: Buffer, mediaType = 'application/wasm'): Label {
  return { name, mediaType, sha256: sha256(data), size: data.length };
}

/** Runs a module with stdout and stderr both appended to a log file; returns the exit and the log. */
async function runWithLog(t: Test, module: Uint8Array, extra: Partial<ModuleInvocation> = {}): Promise<{ exit: ModuleExit; log: string }> {
  const dir = t.testdir();
  const logPath = join(dir, 'out.log');
  const fd = openSync(logPath, 'a');
  try {
    const running = await startModule({ module, args: ['m.wasm'], env: {}, preopens: {}, stdin: 0, stdout: fd, stderr: fd, ...extra }, await runOpts());
    const exit = await running.exited;
    return { exit, log: readFileSync(logPath, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

t.test('hello prints and completes', async (t) => {
  const { exit, log } = await runWithLog(t, await wasm('hello'));
  t.same(exit, { exitCode: 0, reason: 'Completed' });
  t.equal(log, 'Hello from a bindle!\n');
});

t.test('args and env reach the module', async (t) => {
  const { exit, log } = await runWithLog(t, await wasm('echo'), {
    args: ['echo.wasm', 'one', 'two words'],
    env: envRecord([{ name: 'GREETING', value: 'hi' }, { name: 'EMPTY', value: '' }, { name: 'GREETING', value: 'hello' }]),
  });
  t.equal(exit.exitCode, 0);
  t.equal(log, 'arg echo.wasm\narg one\narg two words\nenv GREETING=hello\nenv EMPTY=\n', 'later env entries win');
});

t.test('a non-zero exit', async (t) => {
  const { exit, log } = await runWithLog(t, await wasm('exit3'));
  t.same(exit, { exitCode: 3, reason: 'Error' });
  t.equal(log, 'about to fail\nfailing with status 3\n', 'stdout and stderr both go to the log');
});

t.test('a busy module is killed', async (t) => {
  const dir = t.testdir();
  const fd = openSync(join(dir, 'spin.log'), 'a');
  t.teardown(() => closeSync(fd));
  const running = await startModule({ module: await wasm('spin'), args: ['spin.wasm'], env: {}, preopens: {}, stdin: 0, stdout: fd, stderr: fd }, await runOpts());
  // Wait until it has started spinning: its one line is in the log.
  for (let i = 0; i < 200 && readFileSync(join(dir, 'spin.log'), 'utf8') === ''; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(readFileSync(join(dir, 'spin.log'), 'utf8'), 'spinning\n');
  await running.kill('test says stop');
  t.same(await running.exited, { exitCode: 137, reason: 'Killed', message: 'test says stop' });
  await running.kill('again');
  t.same(await running.exited, { exitCode: 137, reason: 'Killed', message: 'test says stop' }, 'killing twice changes nothing');
});

t.test('modules that cannot start', async (t) => {
  const noStart = await assembleWat('(module (memory (export "memory") 1) (func (export "main")))');
  let { exit } = await runWithLog(t, noStart);
  t.same(exit, { exitCode: 128, reason: 'StartError', message: 'the module exports no _start function: it is not a WASI command' });
  const foreignImport = await assembleWat('(module (import "env" "launch_missiles" (func)) (memory (export "memory") 1) (func (export "_start")))');
  ({ exit } = await runWithLog(t, foreignImport));
  t.match(exit, { exitCode: 128, reason: 'StartError', message: /env|launch_missiles|Import/ });
  const trap = await assembleWat('(module (memory (export "memory") 1) (func (export "_start") unreachable))');
  ({ exit } = await runWithLog(t, trap));
  t.match(exit, { exitCode: 134, reason: 'Trap', message: /^the module trapped: .*unreachable/ });
  ({ exit } = await runWithLog(t, Buffer.from('not wasm at all')));
  t.match(exit, { exitCode: 128, reason: 'StartError' });
});

function resolvedModule(dir: string, entryName: string, entry: Buffer, files: Array<{ name: string; data: Buffer }>): ResolvedModule {
  const entryPath = join(dir, 'entry.wasm');
  writeFileSync(entryPath, entry);
  return {
    id: 'example.com/app/1.0.0',
    ref: 'bindle:example.com/app/1.0.0',
    invoice: { bindleVersion: '1.0.0', bindle: { name: 'example.com/app', version: '1.0.0' } },
    entry: { label: labelOf(entryName, entry), path: entryPath },
    files: files.map((f, i) => {
      const path = join(dir, `file-${i}`);
      writeFileSync(path, f.data);
      return { label: labelOf(f.name, f.data, 'text/plain'), path };
    }),
    fetched: 0,
    cached: 1 + files.length,
  };
}

t.test('a container reads its file parcels from /data', async (t) => {
  const dir = t.testdir({ cache: {} });
  const resolved = resolvedModule(join(dir, 'cache'), 'cat.wasm', await wasm('cat'), [
    { name: 'message.txt', data: Buffer.from('a file parcel\n') },
    { name: '../../notes/other.txt', data: Buffer.from('another one\n') },
  ]);
  const logPath = join(dir, 'c.log');
  const fd = openSync(logPath, 'w');
  t.teardown(() => closeSync(fd));
  let launched = await launchContainer(resolved, { args: [], env: {}, dataDir: join(dir, 'data'), stdin: 0, stdout: fd, stderr: fd }, await runOpts());
  t.same(launched.files.map((f) => f.relativePath), ['message.txt', 'notes/other.txt']);
  t.same(await launched.exited, { exitCode: 0, reason: 'Completed' });
  launched = await launchContainer(resolved, { args: ['notes/other.txt'], env: {}, dataDir: join(dir, 'data'), stdin: 0, stdout: fd, stderr: fd }, await runOpts());
  t.same(await launched.exited, { exitCode: 0, reason: 'Completed' });
  launched = await launchContainer(resolved, { args: ['../c.log'], env: {}, dataDir: join(dir, 'data'), stdin: 0, stdout: fd, stderr: fd }, await runOpts());
  t.same(await launched.exited, { exitCode: 2, reason: 'Error' }, 'the module cannot climb out of /data');
  t.equal(readFileSync(logPath, 'utf8'), 'a file parcel\nanother one\ncat: cannot open the file\n');
});

t.test('a cached entry module that no longer matches its label never runs', async (t) => {
  const dir = t.testdir({ cache: {} });
  const resolved = resolvedModule(join(dir, 'cache'), 'hello.wasm', await wasm('hello'), []);
  const tampered = await wasm('exit3');
  chmodSync(resolved.entry.path, 0o644);
  writeFileSync(resolved.entry.path, tampered);
  const fd = openSync(join(dir, 'c.log'), 'w');
  t.teardown(() => closeSync(fd));
  await t.rejects(
    launchContainer(resolved, { args: [], env: {}, dataDir: join(dir, 'data'), stdin: 0, stdout: fd, stderr: fd }, await runOpts()),
    { code: tampered.length === resolved.entry.label.size ? 'digest_mismatch' : 'size_mismatch', message: new RegExp(`^parcel ${resolved.entry.label.sha256} \\(hello\\.wasm\\) at `) },
  );
  t.equal(readFileSync(join(dir, 'c.log'), 'utf8'), '', 'nothing ran');
});

t.test('$(VAR) references expand from the container env as in Kubernetes', async (t) => {
  const env = envRecord([{ name: 'GREETING', value: 'hi' }, { name: 'EMPTY', value: '' }, { name: 'NESTED', value: '$(GREETING)' }]);
  const cases: Array<[string, string]> = [
    ['$(GREETING)', 'hi'],
    ['say $(GREETING), $(GREETING)!', 'say hi, hi!'],
    ['[$(EMPTY)]', '[]'],
    ['$(UNDEFINED)', '$(UNDEFINED)'],
    ['$$(GREETING)', '$(GREETING)'],
    ['$$$(GREETING)', '$hi'],
    ['$$', '$'],
    ['cost: 5$', 'cost: 5$'],
    ['$HOME and $1', '$HOME and $1'],
    ['$(GREETING', '$(GREETING'],
    ['$()', '$()'],
    ['$(NESTED)', '$(GREETING)'],
    ['$(constructor) $(__proto__)', '$(constructor) $(__proto__)'],
    ['no references', 'no references'],
  ];
  for (const [text, expanded] of cases) t.equal(expandEnvRefs(text, env), expanded, JSON.stringify(text));
});
