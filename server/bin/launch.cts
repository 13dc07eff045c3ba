#!/usr/bin/env node
/**
 * The `bindle-server` command as installed (`npm start`, the package's `bin`, the image, the
 * end-to-end tests and the benchmarks run this file): sizes libuv's thread pool, keeps V8's
 * young generation small and its optimizing compiler off for the start, then loads the server
 * bundle (dist/server/bundle/bindle-server.mjs, see server/bin/bindle-server.ts).
 *
 * Every file system call of the server (open, write, fsync, link, stat) runs on that pool, four
 * threads by default, so at most four fsyncs are under way at once: concurrent small uploads,
 * which need two each (the data, then its parcel directory), were bound by it. The pool reads
 * `UV_THREADPOOL_SIZE` once, when it first starts; Node's ES module loader starts it before the
 * bundle's first line runs, so the size can only be set here, in a CommonJS file that runs before
 * any module is loaded (a `NODE_OPTIONS=--import ...` preload runs the loader first, and the pool
 * then keeps its size). An explicit `UV_THREADPOOL_SIZE` in the environment wins.
 *
 * Loading the server allocates tens of megabytes that mostly die young, and V8 doubles its
 * semi-spaces on that (to 4 MiB each here), which then stay committed and resident: ~2 MiB of a
 * fresh server's idle RSS. So growth is stopped here, before any module loads; once the server
 * listens, boundYoungGeneration (server/young-generation.ts) lets the young generation grow again
 * up to its cap, and the one-shot commands restore V8's default growth first. The cost: more
 * minor collections in a server's first minutes under load (537 against 229 over its first
 * 100,000 invoice GETs, 0.50 s against 0.42 s of collection in all).
 *
 * V8's optimizing and baseline compilers are off likewise until the server listens
 * (server/compiler-tiers.ts): a start made node:path's normalizeString hot enough to be
 * optimized once the installation's path was ~25 characters long, which kept ~4.5 MiB of the
 * compiler resident in the idle server, and the baseline code compiled for start-up code ~0.5 MiB.
 */
import v8 = require('node:v8');

/** The bundle, relative to this file (an import from here resolves against this file's URL). */
const SERVER_BUNDLE = '../bundle/bindle-server.mjs';
/** Threads of libuv's pool unless the environment says otherwise. */
const DEFAULT_THREADPOOL_SIZE = 16;

process.env.UV_THREADPOOL_SIZE ??= String(DEFAULT_THREADPOOL_SIZE);
v8.setFlagsFromString('--semi-space-growth-factor=1');
v8.setFlagsFromString('--no-turbofan');
v8.setFlagsFromString('--no-sparkplug');

// The bundle reports its own start-up failures; an error loading it fails the process as is.
void import(SERVER_BUNDLE);
