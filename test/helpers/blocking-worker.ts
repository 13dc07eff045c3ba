/**
 * A worker module for the WorkerPool tests: a job either echoes its value, answers the id of
 * the thread it runs on, or blocks until the main thread stores a non-zero value in its shared
 * flag (at most 60 s, so nothing hangs).
 */
import { threadId } from 'node:worker_threads';
import { serveJobs } from '../../core/worker-pool.js';

/** One test job. */
export type BlockingJob = { readonly echo: string } | { readonly thread: true } | { readonly flag: SharedArrayBuffer };

serveJobs((job: BlockingJob) => {
  if ('echo' in job) return job.echo;
  if ('thread' in job) return String(threadId);
  Atomics.wait(new Int32Array(job.flag), 0, 0, 60_000);
  return 'released';
});
