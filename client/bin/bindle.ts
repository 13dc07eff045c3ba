#!/usr/bin/env node
/**
 * `bindle`: the command-line client's entry point. Runs the CLI on the process arguments and
 * exits with its code once output is flushed. `bindle --version` alone is answered before the
 * CLI's modules are loaded (scripts call it to probe for the tool), with commander's output.
 *
 * Any other command first keeps WebAssembly on V8's baseline compiler (Liftoff). The one
 * WebAssembly module the CLI runs is undici's HTTP parser (llhttp), whose main function V8
 * recompiles with its optimizing compiler (TurboFan) as soon as it has parsed a reply or two:
 * ~160 ms of a background thread here, which a process cannot exit before, so every command that
 * talked to a server ended that much later (`bindle search` on an empty local server: 0.43 s,
 * against 0.25 s without it; docs/performance.md, "The CLI's exit"). The optimized parser saved
 * nothing measurable, even over 5,000 replies: parsing is a small part of a request's work. The
 * flag is set before the CLI's modules load, so before any WebAssembly is compiled, and not for
 * `--version`, which compiles none and would pay for loading node:v8 (~9 ms of its ~125 ms).
 */
import { VERSION } from '../../core/version.js';

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // A closed pipe (e.g. `bindle search | head`) is not a failure of the command.
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  const { setFlagsFromString } = await import('node:v8');
  setFlagsFromString('--liftoff-only');
  const { runCli } = await import('../cli/run-cli.js');
  process.exitCode = await runCli(argv);
}
