/**
 * Readiness: whether this server should be sent traffic. It is ready when it is serving (not
 * starting, not stopping) and each storage seam answers a trivial read within a deadline: the
 * invoice index a look-up of a name no invoice can have, the parcel store a look-up of a digest.
 * Both are real round trips to the backend (neither index caches a miss, and a parcel store
 * whose storage is gone rejects rather than answer "absent": ../storage/parcel-store.ts), so a
 * lost database, bucket or directory makes the server unready. The reply is
 * schema/readiness-reply.schema.json.
 */
import { performance } from 'node:perf_hooks';
import type { ReadinessReply } from '../../schema/index.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { ParcelStore } from '../storage/parcel-store.js';

/** Where the server is in its life; only `serving` can be ready. */
export type ServerState = ReadinessReply['state'];

/** One named check; it passes when `run` resolves within the deadline. */
export interface ReadinessCheck {
  readonly name: string;
  run(): Promise<unknown>;
}

/** How long a check may take before it counts as failed, by default. */
export const DEFAULT_READINESS_DEADLINE_MS = 2000;

/** The checks of the two storage seams. */
export function storageChecks(index: InvoiceIndex, parcels: ParcelStore): ReadinessCheck[] {
  return [
    // The empty name is never valid, so no invoice has it and the look-up is never a cache hit.
    { name: 'index', run: () => index.get('', '') },
    { name: 'parcels', run: () => parcels.has('0'.repeat(64)) },
  ];
}

type CheckOutcome = ReadinessReply['checks'][string];

async function runCheck(check: ReadinessCheck, deadlineMs: number): Promise<CheckOutcome> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    await Promise.race([check.run(), deadline]);
    return { ok: true, ms: Math.round(performance.now() - start) };
  } catch (err) {
    return { ok: false, ms: Math.round(performance.now() - start), error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check at once (while serving) and reports; `status` says whether to send traffic. */
export async function readiness(state: ServerState, checks: readonly ReadinessCheck[], deadlineMs: number): Promise<ReadinessReply> {
  if (state !== 'serving') {
    return { status: 'unavailable', state, checks: {}, error: `the server is ${state}`, code: 'unavailable' };
  }
  const outcomes = await Promise.all(checks.map((check) => runCheck(check, deadlineMs)));
  const report: ReadinessReply['checks'] = {};
  const failed: string[] = [];
  checks.forEach((check, i) => {
    const outcome = outcomes[i] ?? { ok: false, ms: 0, error: 'not run' };
    report[check.name] = outcome;
    if (!outcome.ok) failed.push(`${check.name}: ${outcome.error ?? 'failed'}`);
  });
  if (failed.length === 0) return { status: 'ready', state, checks: report };
  return { status: 'unavailable', state, checks: report, error: `not ready: ${failed.join('; ')}`, code: 'unavailable' };
}
