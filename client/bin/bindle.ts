#!/usr/bin/env node
/**
 * `bindle`: the command-line client's entry point. Runs the CLI on the process arguments and
 * exits with its code once output is flushed. `bindle --version` alone is answered before the
 * CLI's modules are loaded (scripts call it to probe for the tool), with commander's output.
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
  const { runCli } = await import('../cli/run-cli.js');
  process.exitCode = await runCli(argv);
}
