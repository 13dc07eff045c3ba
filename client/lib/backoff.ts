/**
 * Retry timing: exponential backoff with jitter from a 100 ms base, capped, honouring a
 * server's `Retry-After` (seconds) when it asks for no more than the cap.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export const BACKOFF_BASE_MS = 100;
export const BACKOFF_CAP_MS = 10_000;

/**
 * Delay before retry number `attempt` (0 for the first retry): a random value between half and
 * all of `base * 2^attempt`, at most the cap. A `Retry-After` of whole seconds within the cap wins.
 */
export function backoffDelay(attempt: number, retryAfter?: string, random: () => number = Math.random): number {
  if (retryAfter !== undefined && /^\d+$/.test(retryAfter.trim())) {
    const ms = Number(retryAfter.trim()) * 1000;
    if (ms <= BACKOFF_CAP_MS) return ms;
  }
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Waits before retry number `attempt`. */
export async function waitBeforeRetry(attempt: number, retryAfter?: string): Promise<void> {
  await sleep(backoffDelay(attempt, retryAfter));
}
