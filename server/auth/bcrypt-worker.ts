/**
 * The bcrypt worker thread: compares passwords with bcrypt hashes off the main thread, one
 * message `{ id, password, hash }` in, `{ id, matches }` out. Started by bcrypt-pool.ts only.
 */
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

/** One comparison asked of the worker. */
export interface BcryptJob {
  readonly id: number;
  readonly password: string;
  readonly hash: string;
}

/** Its answer: `matches` is false for a malformed hash, `error` set only if bcrypt itself threw. */
export interface BcryptResult {
  readonly id: number;
  readonly matches: boolean;
  readonly error?: string;
}

parentPort?.on('message', (job: BcryptJob) => {
  let result: BcryptResult;
  try {
    result = { id: job.id, matches: bcrypt.compareSync(job.password, job.hash) };
  } catch (err) {
    result = { id: job.id, matches: false, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort?.postMessage(result);
});
