#!/usr/bin/env node
/**
 * `bindle-kubelet`: runs WebAssembly modules from bindles, as static pods from a manifest
 * directory or one at a time with `run`. See client/kubelet/README.md.
 */
import { kubeletMain } from '../kubelet/kubelet-cli.js';

const code = await kubeletMain(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stderr: (text) => process.stderr.write(text),
  fds: { stdin: 0, stdout: 1, stderr: 2 },
  onSignal: (handler) => {
    process.on('SIGTERM', () => handler('SIGTERM'));
    process.on('SIGINT', () => handler('SIGINT'));
  },
});
process.exitCode = code;
// Everything is closed by now; should anything still hold the event loop, do not hang.
setTimeout(() => process.exit(code), 2000).unref();
