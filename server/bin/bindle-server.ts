#!/usr/bin/env node
/**
 * `bindle-server`: the entry point. It keeps V8's young generation small before anything else is
 * loaded (./young-generation-at-start.ts), then loads the server and its commands
 * (./server-main.ts). A dynamic import, because static imports are all evaluated before a
 * module's own code: in the bundle, the chunks the server shares with the worker threads would
 * otherwise be loaded first, with the young generation growing on their start-up garbage.
 */
import './young-generation-at-start.js';

await import('./server-main.js');
