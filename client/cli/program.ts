/**
 * The `bindle` command line: the global options (each with its `BINDLE_*` variable) and every
 * subcommand, built with commander. Global options are accepted before or after the subcommand,
 * as with the reference CLI: every command carries hidden copies of them (without defaults or
 * variables), and a value given on a command's own line wins over one given before it. Where a
 * command has an option of its own with the same letter or name (`sign-invoice -r <role>`,
 * `keys print --keyring`), the command's meaning wins there and the global one must come first.
 * Help wraps at the terminal's width (80 columns when not a terminal).
 */
import { Command, Option } from 'commander';
import { VERSION } from '../../core/version.js';
import { CliContext } from './cli-context.js';
import type { CliIo, CliStream } from './cli-io.js';
import { integerIn, type ContextProvider } from './command-kit.js';
import { registerKeyCommands } from './commands/key-commands.js';
import { registerLocalCommands } from './commands/local-commands.js';
import { registerLoginCommand } from './commands/login-command.js';
import { registerReadCommands } from './commands/read-commands.js';
import { registerWriteCommands } from './commands/write-commands.js';
import { DEFAULT_CLI_STRATEGY, DEFAULT_SERVER_URL, resolveSettings, type GlobalOptionValues } from './settings.js';

const DESCRIPTION = [
  'The Bindle client: push, fetch, search, sign and verify bindles on a Bindle server.',
  '',
  'Every fetched invoice is verified against your keyring (-r) with the verification strategy (--strategy), and every downloaded parcel is re-hashed before it is kept.',
].join('\n');

const AFTER_HELP = `
Global options may go before or after the command:
  bindle -s https://bindle.example.com/v1/ -r keyring.toml get example.com/app/1
Exit codes: 0 success (an identical re-push is a success), 1 the operation
failed, 2 the command line is wrong.`;

const SUBCOMMAND_AFTER_HELP = "\nGlobal options (-s/--server, -r/--keyring, ...) may also be given here: see\n'bindle --help'.";

/** The width help is wrapped at: the terminal's, else 80 columns. */
function helpWidth(stream: CliStream): number {
  return stream.isTTY === true && stream.columns !== undefined && stream.columns > 0 ? stream.columns : 80;
}

/**
 * Gives every command below `program` hidden copies of the global options (no default, no
 * variable: those stay with the program), skipping a letter or name the command already uses,
 * and a pointer to `bindle --help` in its help. Returns the commands that got a copy of each
 * global option, by its attribute name.
 */
function spreadGlobalOptions(program: Command): Map<string, Set<Command>> {
  const carriers = new Map<string, Set<Command>>();
  const globals = program.options.filter((o) => o.long !== '--version' && o.long !== '--help');
  const visit = (command: Command): void => {
    for (const sub of command.commands) {
      const taken = new Set(sub.options.flatMap((o) => [o.short, o.long]));
      for (const global of globals) {
        if (global.long === undefined || taken.has(global.long)) continue;
        const short = global.short !== undefined && !taken.has(global.short) ? `${global.short}, ` : '';
        const value = global.required ? ' <value>' : global.optional ? ' [value]' : '';
        const copy = new Option(`${short}${global.long}${value}`, global.description).hideHelp();
        if (global.parseArg !== undefined) copy.argParser(global.parseArg);
        sub.addOption(copy);
        const set = carriers.get(global.attributeName()) ?? new Set<Command>();
        set.add(sub);
        carriers.set(global.attributeName(), set);
      }
      sub.addHelpText('after', SUBCOMMAND_AFTER_HELP);
      visit(sub);
    }
  };
  visit(program);
  return carriers;
}

/**
 * The global option values for a running command: for each global option, the value given on
 * the line of the nearest command (the command itself, then its parents) that carries a copy of
 * it, else the program's (flag before the subcommand, `BINDLE_*` variable or default).
 */
function globalValuesFor(command: Command, program: Command, carriers: ReadonlyMap<string, ReadonlySet<Command>>): GlobalOptionValues {
  const values: Record<string, unknown> = { ...program.opts() };
  for (const [name, commands] of carriers) {
    for (let cmd: Command | null = command; cmd !== null && cmd !== program; cmd = cmd.parent) {
      if (commands.has(cmd) && cmd.getOptionValueSource(name) === 'cli') {
        values[name] = cmd.getOptionValue(name);
        break;
      }
    }
  }
  return values as unknown as GlobalOptionValues;
}

/**
 * Builds the program for one invocation. Each command that runs creates its CliContext
 * through `contexts` (the caller closes them). Commander's own exits are turned into
 * exceptions (`exitOverride`) and its output goes to `io`.
 */
export function buildProgram(io: CliIo, contexts: CliContext[]): Command {
  const program = new Command('bindle');
  program
    .description(DESCRIPTION)
    .version(VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .enablePositionalOptions()
    .configureHelp({
      showGlobalOptions: false,
      sortSubcommands: false,
      // `[options]` in every line of the command list only widens it.
      subcommandTerm: (cmd) => [cmd.name(), ...cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`))].join(' '),
    })
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      getOutHelpWidth: () => helpWidth(io.stdout),
      getErrHelpWidth: () => helpWidth(io.stderr),
      outputError: (s, write) => write(`bindle: ${s.replace(/^error: /, '').trimEnd()} (see 'bindle --help')\n`),
    })
    .addHelpText('after', AFTER_HELP)
    .addOption(
      new Option('-s, --server <url>', 'the Bindle server, including the API path, e.g. https://bindle.example.com/v1/')
        .env('BINDLE_URL')
        .default(DEFAULT_SERVER_URL),
    )
    .addOption(new Option('-d, --bindle-dir <dir>', 'where fetched bindles are cached (default: $XDG_CACHE_HOME/bindle)').env('BINDLE_DIRECTORY'))
    .addOption(
      new Option('-r, --keyring <file>', 'the keyring of trusted public keys (default: $XDG_CONFIG_HOME/bindle/keyring.toml)').env('BINDLE_KEYRING'),
    )
    .addOption(
      new Option('--strategy <name>', 'how invoices are verified: CreativeIntegrity, AuthoritativeIntegrity, GreedyVerification, ExhaustiveVerification, MultipleAttestation[roles], MultipleAttestationGreedy[roles]')
        .env('BINDLE_VERIFICATION_STRATEGY')
        .default(DEFAULT_CLI_STRATEGY),
    )
    .addOption(new Option('--http-user <user>', 'user name for HTTP Basic auth (needs --http-password)').env('BINDLE_HTTP_USER'))
    .addOption(new Option('--http-password <password>', 'password for HTTP Basic auth (prefer the variable to the flag)').env('BINDLE_HTTP_PASSWORD'))
    .addOption(
      new Option('-t, --token-file <file>', "a bearer token file: what 'bindle login' stores (refreshed when it expires), the reference CLI's, or a file holding just the token (default: $XDG_CONFIG_HOME/bindle/.token, when it exists)").env(
        'BINDLE_TOKEN_FILE',
      ),
    )
    .addOption(new Option('-k, --insecure', 'do not check the server\'s TLS certificate'))
    .addOption(new Option('--timeout <seconds>', 'give up on a stalled connection or transfer after this long (default: 30)').env('BINDLE_TIMEOUT').argParser(integerIn(1, 86_400)))
    .addOption(new Option('--retries <n>', 'retries after a 5xx reply or a connection failure (default: 5, over 1.5–3 s)').env('BINDLE_RETRIES').argParser(integerIn(0, 100)))
    .addOption(new Option('--no-progress', 'never draw progress bars (they are only drawn when stdout is a terminal)'));

  let carriers: ReadonlyMap<string, ReadonlySet<Command>> = new Map();
  const contextOf: ContextProvider = (command) => {
    const ctx = new CliContext(io, resolveSettings(globalValuesFor(command, program, carriers), io));
    contexts.push(ctx);
    return ctx;
  };
  registerReadCommands(program, contextOf);
  registerWriteCommands(program, contextOf);
  registerKeyCommands(program, contextOf);
  registerLocalCommands(program, contextOf);
  registerLoginCommand(program, contextOf);
  carriers = spreadGlobalOptions(program);
  return program;
}
