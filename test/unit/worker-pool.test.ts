/**
 * Issue 11 item 5 (worker queue): a WorkerPool's queue is bounded (a job beyond it is refused
 * `unavailable` with a retry delay, not queued) and a job that overruns its time limit has its
 * worker terminated and replaced, while the jobs behind it still run. A worker with no job for
 * `idleMs` exits (its memory is given back), and the next job starts a new one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { BindleError } from '../../core/errors/bindle-error.js';
import { DEFAULT_WORKER_IDLE_MS, WorkerPool } from '../../core/worker-pool.js';
import type { BlockingJob } from '../helpers/blocking-worker.js';

const WORKER = new URL('../helpers/blocking-worker.ts', import.meta.url);

function blocker(): { job: BlockingJob; release: () => void } {
  const flag = new SharedArrayBuffer(4);
  return {
    job: { flag },
    release: () => {
      Atomics.store(new Int32Array(flag), 0, 1);
      Atomics.notify(new Int32Array(flag), 0);
    },
  };
}

t.test('a job beyond a full queue is refused as unavailable with a retry delay', async (t) => {
  const pool = new WorkerPool<BlockingJob, string>(WORKER, 1, { maxQueued: 2, retryAfterSeconds: 3 });
  const first = blocker();
  t.teardown(first.release);
  const running = pool.run(first.job);
  const queued = [pool.run({ echo: 'a' }), pool.run({ echo: 'b' })];
  t.equal(pool.pending, 3);
  await t.rejects(pool.run({ echo: 'c' }), { code: 'unavailable', retryAfterSeconds: 3, message: /2 jobs are already waiting/ });
  t.equal(pool.pending, 3, 'the refused job was not queued');
  first.release();
  t.equal(await running, 'released');
  t.same(await Promise.all(queued), ['a', 'b']);
  t.equal(await pool.run({ echo: 'd' }), 'd', 'room again once the queue drains');
  t.equal(pool.pending, 0);
});

t.test('without maxQueued the queue is unbounded', async (t) => {
  const pool = new WorkerPool<BlockingJob, string>(WORKER, 1);
  const first = blocker();
  t.teardown(first.release);
  const running = pool.run(first.job);
  const queued = Array.from({ length: 50 }, (_, i) => pool.run({ echo: String(i) }));
  first.release();
  await running;
  t.equal((await Promise.all(queued)).length, 50);
});

t.test('a job over its time limit is aborted; its worker is replaced and the queue goes on', async (t) => {
  const pool = new WorkerPool<BlockingJob, string>(WORKER, 1, {
    timeoutMs: 300,
    timeoutError: () => new BindleError('payload_too_large', 'took too long'),
  });
  const hung = blocker();
  t.teardown(hung.release);
  const aborted = pool.run(hung.job);
  const behind = pool.run({ echo: 'behind' });
  await t.rejects(aborted, { code: 'payload_too_large', message: 'took too long' });
  t.equal(await behind, 'behind', 'the job queued behind it ran on a new worker');
  t.equal(await pool.run({ echo: 'after' }), 'after');
  t.equal(pool.pending, 0);
});

/** Waits until `pool` has no worker thread left (at most `ms`); the number left then. */
async function threadsAfterIdle(pool: WorkerPool<BlockingJob, string>, ms: number): Promise<number> {
  for (const deadline = Date.now() + ms; pool.threads > 0 && Date.now() < deadline; ) await sleep(20);
  return pool.threads;
}

t.test('a worker idle for idleMs exits; one that keeps getting jobs, or runs a long one, stays', async (t) => {
  t.ok(DEFAULT_WORKER_IDLE_MS >= 10_000, 'by default a worker is kept for a burst of jobs');
  const pool = new WorkerPool<BlockingJob, string>(WORKER, 1, { idleMs: 300 });
  const first = await pool.run({ thread: true });
  t.equal(pool.threads, 1);
  for (let i = 0; i < 5; i++) {
    await sleep(100);
    t.equal(await pool.run({ thread: true }), first, `job ${i + 1} within idleMs of the last runs on the same thread`);
  }
  const long = blocker();
  t.teardown(long.release);
  const running = pool.run(long.job);
  await sleep(600);
  t.equal(pool.threads, 1, 'a job running longer than idleMs keeps its worker');
  long.release();
  t.equal(await running, 'released');

  t.equal(await threadsAfterIdle(pool, 10_000), 0, 'once idle for idleMs, the worker has left the pool');
  const next = await pool.run({ thread: true });
  t.not(next, first, 'the next job runs on a new thread');
  t.equal(pool.threads, 1);
  t.equal(pool.pending, 0);
});

t.test('close() rejects the running and the queued jobs as unavailable, ends every thread, and refuses later jobs', async (t) => {
  const pool = new WorkerPool<BlockingJob, string>(WORKER, 2);
  const held = [blocker(), blocker()];
  t.teardown(() => held.forEach((b) => b.release()));
  const running = held.map((b) => pool.run(b.job));
  const queued = pool.run({ echo: 'queued' });
  t.equal(pool.threads, 2);
  t.equal(pool.pending, 3);
  pool.close();
  for (const job of [...running, queued]) await t.rejects(job, { code: 'unavailable', message: /closed/ });
  t.equal(pool.threads, 0, 'every worker left the pool');
  t.equal(pool.pending, 0);
  await t.rejects(pool.run({ echo: 'late' }), { code: 'unavailable' }, 'a job after close is refused');
  t.equal(pool.threads, 0, 'and starts no thread');
  pool.close();
  t.pass('closing twice is harmless');
});
