#!/usr/bin/env node
/**
 * The `bindle` command as installed (the packages' `bin`, client/dist/bindle.cjs): sizes libuv's
 * thread pool, then loads the CLI (client/dist/bindle.mjs, see client/bin/bindle.ts).
 *
 * Every file system call of the CLI runs on that pool, four threads by default, so at most four
 * fsyncs are under way at once: a `get` of many small parcels, which fsyncs each file it keeps,
 * was bound by it (16 threads: 1000 parcels of 4 KiB in 3.4–5.4 s instead of 3.7–6.7 s, six
 * interleaved pairs on a loaded machine). The pool reads `UV_THREADPOOL_SIZE` once, when it
 * first starts, and Node's ES module loader starts it before an ES module's first line runs, so
 * the size can only be set here, in a CommonJS file that runs before any module is loaded (as
 * the server's launcher does, server/bin/launch.cts). An explicit `UV_THREADPOOL_SIZE` in the
 * environment wins.
 */

/** The CLI, relative to this file (an import from here resolves against this file's URL). */
const CLI_MODULE = './bindle.mjs';
/** Threads of libuv's pool unless the environment says otherwise. */
const DEFAULT_THREADPOOL_SIZE = 16;

process.env.UV_THREADPOOL_SIZE ??= String(DEFAULT_THREADPOOL_SIZE);

// The CLI reports its own failures and sets the exit code; an error loading it fails the process as is.
void import(CLI_MODULE);
