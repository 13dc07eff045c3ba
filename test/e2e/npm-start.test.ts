/**
 * `npm start` as the README runs it: it serves, and stopping the `npm start` process (SIGTERM,
 * as a terminal's or a supervisor's stop sends it) stops the server too. npm runs the script
 * under `sh -c`, which does not pass the signal on, so the script `exec`s the server.
 */
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { trackChild } from '../../bench/lib/cleanup.js';
import { REPO_ROOT } from '../helpers/paths.js';

/** Pids of processes whose command line holds `marker`. */
function processesWith(marker: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

t.test('stopping `npm start` stops the server', async (t) => {
  const directory = join(t.testdir(), 'npm-start-data');
  const npm = trackChild(
    spawn('npm', ['start', '--', '--address', '127.0.0.1:0', '--directory', directory], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  t.teardown(() => {
    for (const pid of processesWith(directory)) process.kill(pid, 'SIGKILL');
  });
  let output = '';
  const origin = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const m = /"address":"(http:\/\/[^"]+)"/.exec(output);
      if (m?.[1] !== undefined) resolve(m[1]);
    };
    npm.stdout.on('data', onData);
    npm.stderr.on('data', onData);
    npm.once('exit', () => reject(new Error(`npm start exited before the server listened:\n${output}`)));
  });
  t.equal((await fetch(`${origin}/healthz`)).status, 200, 'npm start serves');
  t.ok(processesWith(directory).length > 0, 'the server runs');
  const exited = once(npm, 'exit');
  npm.kill('SIGTERM');
  await exited;
  for (let i = 0; i < 200 && processesWith(directory).length > 0; i++) await sleep(50);
  t.same(processesWith(directory), [], 'no server is left running');
});
