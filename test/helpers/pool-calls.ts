/**
 * Counting the asynchronous file system calls a piece of code makes: each is a round trip
 * through libuv's thread pool, which the client and server keep few (see core/fs-atomic.ts).
 */
import { createHook } from 'node:async_hooks';

/** Whether an async resource type is a file system call through the thread pool. */
function isPoolCall(type: string): boolean {
  return type.startsWith('FSREQ') || type === 'FILEHANDLECLOSEREQ';
}

/**
 * Runs `fn` and returns its result with the async resource types of the file system calls made
 * meanwhile, in order (`FSREQCALLBACK` for the callback API, `FSREQPROMISE` for fs/promises,
 * `FILEHANDLECLOSEREQ` for a FileHandle's close). Calls made by anything else running at the same
 * time count too: run it alone.
 */
export async function withPoolCalls<T>(fn: () => Promise<T>): Promise<{ result: T; calls: string[] }> {
  const calls: string[] = [];
  const hook = createHook({
    init: (_id, type) => {
      if (isPoolCall(type)) calls.push(type);
    },
  });
  hook.enable();
  try {
    return { result: await fn(), calls };
  } finally {
    hook.disable();
  }
}

/**
 * Runs `fn` and returns its result with the most file system calls that were under way at once
 * (made and not yet called back) meanwhile. Calls made by anything else running at the same
 * time count too: run it alone.
 */
export async function withPoolCallsInFlight<T>(fn: () => Promise<T>): Promise<{ result: T; most: number }> {
  const pending = new Set<number>();
  let most = 0;
  const hook = createHook({
    init: (id, type) => {
      if (!isPoolCall(type)) return;
      pending.add(id);
      most = Math.max(most, pending.size);
    },
    before: (id) => {
      pending.delete(id);
    },
    destroy: (id) => {
      pending.delete(id);
    },
  });
  hook.enable();
  try {
    return { result: await fn(), most };
  } finally {
    hook.disable();
  }
}
