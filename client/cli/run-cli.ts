/**
 * Runs one `bindle` invocation against a CliIo and returns its exit code: 0 on success, 1 when
 * the operation failed, 2 when the command line is wrong. Failures are printed as one line on
 * stderr (with a hint when the server's reply shows a wrong URL or a full disk); clients opened
 * by the command are always closed.
 */
import { CommanderError } from 'commander';
import type { CliContext } from './cli-context.js';
import { CliFailure, EXIT_FAILURE, EXIT_USAGE, formatFailure } from './cli-error.js';
import { processIo, warnLine, type CliIo } from './cli-io.js';
import { buildProgram } from './program.js';

/** A failure without a hint gets the server hint of the command's context, if any applies. */
function withServerHint(err: unknown, contexts: readonly CliContext[]): unknown {
  const ctx = contexts[0];
  if (ctx === undefined) return err;
  const cause = err instanceof CliFailure ? err.cause : err;
  const hint = err instanceof CliFailure && err.hint !== undefined ? undefined : ctx.serverHint(cause);
  if (hint === undefined) return err;
  return err instanceof CliFailure ? new CliFailure(err.what, cause, { hint, exitCode: err.exitCode }) : new CliFailure('the server failed', cause, { hint });
}

/**
 * Refuses `bindle <unknown command> --help` as a usage error, as the same line without --help is:
 * commander answers a help flag before it looks at the command and would print the main help
 * with exit 0. Parses the options on a program of its own (parsing stores their values).
 */
function refuseHelpForUnknownCommand(argv: readonly string[], io: CliIo): void {
  if (!argv.some((arg) => arg === '-h' || arg === '--help')) return;
  let command = buildProgram(io, []);
  let args = [...argv];
  // Down the command groups (bindle keys ...) while the operands name commands.
  for (;;) {
    const { operands, unknown } = command.parseOptions(args);
    const [first, ...rest] = operands;
    if (first === undefined || first === 'help' || command.commands.length === 0) return;
    const sub = command.commands.find((c) => c.name() === first || c.aliases().includes(first));
    if (sub === undefined) command.error(`error: unknown command '${first}'`, { code: 'commander.unknownCommand' });
    else [command, args] = [sub, [...rest, ...unknown]];
  }
}

/** Runs the CLI with `argv` (the arguments after the program name). Never throws. */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const contexts: CliContext[] = [];
  try {
    refuseHelpForUnknownCommand(argv, io);
    const program = buildProgram(io, contexts);
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    warnLine(io, formatFailure(withServerHint(err, contexts)));
    return err instanceof CliFailure ? err.exitCode : EXIT_FAILURE;
  } finally {
    for (const ctx of contexts) await ctx.close();
  }
}
