#!/usr/bin/env node
/**
 * `bindle`: the command-line client's entry point. Runs the CLI on the process arguments and
 * exits with its code once output is flushed.
 */
import { runCli } from '../cli/run-cli.js';

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // A closed pipe (e.g. `bindle search | head`) is not a failure of the command.
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2));
