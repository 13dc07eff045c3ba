/**
 * The bcrypt worker thread: compares a password with a bcrypt hash off the main thread (false
 * for a malformed hash). Started by bcrypt-pool.ts only.
 */
import bcrypt from 'bcryptjs';
import { serveJobs } from '../../core/worker-pool.js';

/** One comparison asked of the worker. */
export interface BcryptJob {
  readonly password: string;
  readonly hash: string;
}

serveJobs((job: BcryptJob): boolean => {
  try {
    return bcrypt.compareSync(job.password, job.hash);
  } catch {
    return false;
  }
});
