/**
 * A log destination that fails or stalls (server/log-destination.ts): the real server with its
 * stdout on a full device, or on a pipe nobody reads, keeps serving, counts what it could not
 * write and stops on SIGTERM (with pino's default destination it did neither); the destination
 * drops lines past its bound and waits for the rest only as long as asked, and writes the lines
 * that come within the batch time (LINE_BATCH_MS) together.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { trackChild } from '../../bench/lib/cleanup.js';
import { freePort, waitUntilHealthy } from '../../bench/lib/http.js';
import { openLogDestination } from '../../server/log-destination.js';
import { withPoolCalls } from '../helpers/pool-calls.js';
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

t.test('a server whose log reader stops reading keeps serving, drops lines past the bound and stops on SIGTERM', async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'bindle-stalled-log-'));
  const port = await freePort();
  // stdout is a pipe this test never reads: once the pipe's buffer is full, every write waits.
  const child = trackChild(spawn(process.execPath, [SERVER_BIN, '--address', `127.0.0.1:${port}`, '--directory', directory], { stdio: ['ignore', 'pipe', 'ignore'] }));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdout?.destroy();
    rmSync(directory, { recursive: true, force: true });
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(origin, { timeoutMs: 30_000, intervalMs: 50, failed: () => (child.exitCode === null ? undefined : `exited ${String(child.exitCode)}`) });
  // Enough requests, each logged with two lines, to fill the pipe many times over.
  for (let round = 0; round < 40; round++) {
    const replies = await Promise.all(Array.from({ length: 50 }, () => fetch(`${origin}/v1/_i/example.com/absent/1.0.0`).then((r) => r.status)));
    if (replies.some((status) => status !== 404)) t.fail(`round ${round}: ${replies.join(',')}`);
  }
  t.equal((await fetch(`${origin}/healthz`)).status, 200, 'still answering');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const started = Date.now();
  const code = await exit;
  clearTimeout(timer);
  t.equal(code, 0, `SIGTERM stopped it cleanly, in ${Date.now() - started} ms`);
});

t.test('lines past the bound are dropped and counted; drained() waits for the rest, or gives up', { skip: spawnSync('mkfifo', ['--version']).status === 0 ? false : 'no mkfifo' }, async (t) => {
  const dir = t.testdir();
  const fifo = join(dir, 'log.fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'a FIFO');
  // Opened for reading and writing, so that the open does not wait for a reader; nothing reads it.
  const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  const destination = openLogDestination(fd, 128 * 1024);
  // destroy() closes the descriptor (closing it here too could close another file's number).
  t.teardown(() => destination.destroy());
  const line = `${JSON.stringify({ msg: 'x'.repeat(200) })}\n`;
  for (let i = 0; i < 5000; i++) destination.lines.write(line);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const { droppedLines } = destination.logFailures();
  t.ok(droppedLines > 0, `lines past the bound were dropped (${droppedLines} of 5000)`);
  t.ok(droppedLines < 5000, 'the first ones were kept or written');
  const started = Date.now();
  await destination.drained(300);
  t.ok(Date.now() - started >= 250, 'drained() waited for the stalled reader, then gave up');

  const file = join(dir, 'log.txt');
  const fileFd = openSync(file, 'w');
  const toFile = openLogDestination(fileFd);
  t.teardown(() => toFile.destroy());
  for (let i = 0; i < 1000; i++) toFile.lines.write(line);
  await toFile.drained(10_000);
  t.equal(readFileSync(file, 'utf8').length, 1000 * line.length, 'drained() resolved once every line was written');
  await toFile.drained(0);
  t.pass('and at once when nothing waits');
});

t.test('lines that come within the batch time are written with one write, held to the bound', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'log.txt');
  const fd = openSync(file, 'w');
  // A batch time long enough for the three turns below on a loaded machine (at the default 5 ms
  // they took longer once, beside two test runs, and made two writes).
  const destination = openLogDestination(fd, 1000, 250);
  t.teardown(() => destination.destroy());
  // The destinations of the tests before close their descriptors asynchronously (an fsync and a
  // close in the pool): let them finish before counting this one's calls.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const lines = ['{"msg":"one"}\n', '{"msg":"two"}\n', '{"msg":"three"}\n'];
  const { calls } = await withPoolCalls(async () => {
    destination.lines.write(lines[0] ?? '');
    // The next lines come in later turns of the event loop, within the batch's time.
    await new Promise((resolve) => setImmediate(resolve));
    destination.lines.write(lines[1] ?? '');
    await new Promise((resolve) => setImmediate(resolve));
    destination.lines.write(lines[2] ?? '');
    await destination.drained(10_000);
  });
  t.same(calls, ['FSREQCALLBACK'], 'one write for the three lines (a write per line started at once made two or three)');
  t.equal(readFileSync(file, 'utf8'), lines.join(''), 'in order');

  const big = `${JSON.stringify({ msg: 'x'.repeat(280) })}\n`;
  for (let i = 0; i < 5; i++) destination.lines.write(big);
  await destination.drained(10_000);
  t.equal(readFileSync(file, 'utf8'), lines.join('') + big.repeat(3), 'a turn keeps the lines that fit the bound');
  t.equal(destination.logFailures().droppedLines, 2, 'and counts the others as dropped');
});
