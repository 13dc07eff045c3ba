/**
 * A test process that is ended before its teardowns run (tap's per-file timeout sends SIGTERM)
 * takes the servers it started with it: a real test file starts a real bindle-server through
 * test/helpers/server-process.ts (tracked by bench/lib/cleanup.ts), is sent SIGTERM, and the
 * server must be gone soon after.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { REPO_ROOT } from '../helpers/paths.js';

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('a test process ended by SIGTERM stops the server it started', async (t) => {
  const dir = t.testdir();
  const script = join(dir, 'starts-a-server.test.mts');
  writeFileSync(
    script,
    `import t from 'tap';
import { startServerProcess } from ${JSON.stringify(join(REPO_ROOT, 'test', 'helpers', 'server-process.ts'))};
t.test('starts a server and waits', async (t) => {
  const server = await startServerProcess(t, { directory: ${JSON.stringify(join(dir, 'server'))} });
  process.stdout.write(JSON.stringify({ serverPid: server.child.pid }) + '\\n');
  await new Promise(() => {});
});
`,
  );
  // The server's directory is the outer test's: the inner test's teardowns, which would remove
  // a directory of its own, never run.
  mkdirSync(join(dir, 'server'));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  const serverPid = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = /\{"serverPid":(\d+)\}/.exec(out);
      if (m?.[1] !== undefined) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`the test process exited before its server started:\n${out}`)));
  });
  t.teardown(() => {
    if (running(serverPid)) process.kill(serverPid, 'SIGKILL');
  });
  t.ok(running(serverPid), 'the server runs');
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
  for (let i = 0; i < 200 && running(serverPid); i++) await sleep(50);
  t.notOk(running(serverPid), 'the server is gone once its test process was ended');
});
