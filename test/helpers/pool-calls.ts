/**
 * Counting the asynchronous file system calls a piece of code makes: each is a round trip
 * through libuv's thread pool, which the client and server keep few (see core/fs-atomic.ts).
 */
import { createHook } from 'node:async_hooks';

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
      if (type.startsWith('FSREQ') || type === 'FILEHANDLECLOSEREQ') calls.push(type);
    },
  });
  hook.enable();
  try {
    return { result: await fn(), calls };
  } finally {
    hook.disable();
  }
}
