/**
 * The `bindle` command line: the global options (each with its `BINDLE_*` variable) and every
 * subcommand, built with commander. Global options go before the subcommand, as with the
 * reference CLI (`bindle -r keyring.toml get …`), because subcommands reuse some of their
 * letters (`sign-invoice -r <role>`).
 */
import { Command, Option } from 'commander';
import { VERSION } from '../../core/version.js';
import { CliContext } from './cli-context.js';
import type { CliIo } from './cli-io.js';
import { integerIn, type ContextProvider } from './command-kit.js';
import { registerKeyCommands } from './commands/key-commands.js';
import { registerLocalCommands } from './commands/local-commands.js';
import { registerReadCommands } from './commands/read-commands.js';
import { registerWriteCommands } from './commands/write-commands.js';
import { DEFAULT_CLI_STRATEGY, DEFAULT_SERVER_URL, resolveSettings, type GlobalOptionValues } from './settings.js';

const DESCRIPTION = [
  'The Bindle client: push, fetch, search, sign and verify bindles on a Bindle server.',
  '',
  'Every fetched invoice is verified against your keyring (-r) with the verification strategy (--strategy), and every downloaded parcel is re-hashed before it is kept.',
].join('\n');

const AFTER_HELP = `
Global options go before the command: bindle -s https://bindle.example.com/v1/ -r keyring.toml get example.com/app/1.0.0
Exit codes: 0 success (an identical re-push is a success), 1 the operation failed, 2 the command line is wrong.`;

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
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
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
      new Option('-t, --token-file <file>', "a bearer token file: the reference's 'bindle login' token file, or a file holding just the token (default: $XDG_CONFIG_HOME/bindle/.token, when it exists)").env(
        'BINDLE_TOKEN_FILE',
      ),
    )
    .addOption(new Option('-k, --insecure', 'do not check the server\'s TLS certificate'))
    .addOption(new Option('--timeout <seconds>', 'give up on a stalled connection or transfer after this long (default: 30)').env('BINDLE_TIMEOUT').argParser(integerIn(1, 86_400)))
    .addOption(new Option('--retries <n>', 'retries after a 5xx reply or a connection failure (default: 3)').env('BINDLE_RETRIES').argParser(integerIn(0, 100)))
    .addOption(new Option('--no-progress', 'never draw progress bars (they are only drawn when stdout is a terminal)'));

  const contextOf: ContextProvider = (command) => {
    const ctx = new CliContext(io, resolveSettings(command.optsWithGlobals<GlobalOptionValues>(), io));
    contexts.push(ctx);
    return ctx;
  };
  registerReadCommands(program, contextOf);
  registerWriteCommands(program, contextOf);
  registerKeyCommands(program, contextOf);
  registerLocalCommands(program, contextOf);
  return program;
}
