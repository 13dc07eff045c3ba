/**
 * A log destination that fails or stalls (server/log-destination.ts): the real server with its
 * stdout on a full device keeps serving, counts the failed writes in its metrics and stops on
 * SIGTERM (with pino's default destination it neither served nor exited); a destination whose
 * reader stops reading drops lines past the bound instead of growing, and, on a non-blocking
 * pipe, the exit does not wait for the reader.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { trackChild } from '../../bench/lib/cleanup.js';
import { freePort, waitUntilHealthy } from '../../bench/lib/http.js';
import { openLogDestination } from '../../server/log-destination.js';
import { SERVER_BIN } from '../helpers/server-process.js';

t.test('a server whose stdout is a full device keeps serving, counts the failures and stops on SIGTERM', { skip: existsSync('/dev/full') ? false : 'no /dev/full here' }, async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'bindle-full-log-'));
  const full = openSync('/dev/full', 'w');
  const port = await freePort();
  const child = trackChild(
    spawn(process.execPath, [SERVER_BIN, '--address', `127.0.0.1:${port}`, '--directory', directory], { stdio: ['ignore', full, 'pipe'] }),
  );
  closeSync(full);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(directory, { recursive: true, force: true });
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(origin, { timeoutMs: 30_000, intervalMs: 50, failed: () => (child.exitCode === null ? undefined : `exited ${String(child.exitCode)}: ${stderr}`) });
  for (let i = 0; i < 20; i++) t.equal((await fetch(`${origin}/v1/_i/example.com/absent/1.0.0`)).status, 404, `request ${i} answered`);
  const metrics = await (await fetch(`${origin}/metrics`)).text();
  const failed = Number(/^bindle_log_failures_total\{kind="failed_write"\} (\d+)$/m.exec(metrics)?.[1] ?? 'NaN');
  t.ok(failed > 0, `the failed log writes are counted (${failed})`);
  t.equal((await fetch(`${origin}/healthz`)).status, 200, 'still healthy');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await exit;
  clearTimeout(timer);
  t.equal(code, 0, `SIGTERM stopped it cleanly (stderr: ${stderr.slice(0, 500)})`);
});

t.test('a reader that stops reading: lines past the bound are dropped and counted, and the exit does not wait', { skip: spawnSync('mkfifo', ['--version']).status === 0 ? false : 'no mkfifo' }, async (t) => {
  const dir = t.testdir();
  const fifo = join(dir, 'log.fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'a FIFO');
  // Opened for reading and writing, so that the open does not wait for a reader; nothing reads it.
  const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  const destination = openLogDestination(fd, 128 * 1024);
  t.teardown(() => {
    destination.stream.destroy();
    closeSync(fd);
  });
  const line = `${JSON.stringify({ msg: 'x'.repeat(200) })}\n`;
  for (let i = 0; i < 5000; i++) destination.stream.write(line);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const { droppedLines } = destination.logFailures();
  t.ok(droppedLines > 0, `lines past the bound were dropped (${droppedLines} of 5000)`);
  t.ok(droppedLines < 5000, 'the first ones were kept or written');
  // A process whose log reader stalled still exits: the exit hook meets a full pipe and gives up.
  const script = [
    `import { openLogDestination } from ${JSON.stringify(new URL('../../server/log-destination.ts', import.meta.url).href)};`,
    `import { openSync, constants } from 'node:fs';`,
    `const d = openLogDestination(openSync(${JSON.stringify(fifo)}, constants.O_RDWR | constants.O_NONBLOCK), 1 << 20);`,
    `for (let i = 0; i < 2000; i++) d.stream.write(${JSON.stringify(line)});`,
    `setTimeout(() => process.exit(0), 200);`,
  ].join('\n');
  const started = Date.now();
  const result = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { timeout: 30_000, encoding: 'utf8' });
  t.equal(result.status, 0, `the process exited (${result.stderr.slice(0, 300)})`);
  t.ok(Date.now() - started < 20_000, 'without waiting for the reader');
});
