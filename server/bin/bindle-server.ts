#!/usr/bin/env node
/**
 * `bindle-server`: the server bundle's entry (scripts/bundle-server.mjs), loaded by ./launch.cts.
 * The one place that picks concrete implementations (file parcel store, SQLite index, keyring verifier, configured auth), starts the HTTP server and
 * shuts it down gracefully on SIGTERM/SIGINT; SIGHUP reloads the trusted keyring. The admin
 * commands (`reindex`, `export`, `migrate`, `keys create-host`, `gc`, `fsck`) are in
 * admin-commands.ts. Exit status on failure: 2 for a bad command line or configuration (a
 * BindleError), 1 for a start-up failure the environment caused (a StartupError: port in use,
 * unusable directory or TLS file), both one line on stderr; 1 with the stack for anything else.
 */
import { hostname } from 'node:os';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { VERSION } from '../../core/version.js';
import { parseServerInvocation } from '../config/server-config.js';
import { openServer, StartupError } from '../server-runtime.js';
import { pino } from 'pino';
import { runExport, runFsck, runGc, runKeys, runMigrate, runReindex, type CommandIo } from './admin-commands.js';
import { enableCompilerTiers } from '../compiler-tiers.js';
import { boundYoungGeneration, restoreYoungGenerationGrowth } from '../young-generation.js';
import { compactHeap, compactWhenIdle } from '../heap-compaction.js';
import { keepOldGenerationHeadroom } from '../old-generation-headroom.js';
import { logProcessWarnings } from '../process-warnings.js';

/** The commands besides serving, each run by runAdminCommand. */
const COMMANDS = ['reindex', 'export', 'migrate', 'keys', 'gc', 'fsck'] as const;
type AdminCommand = (typeof COMMANDS)[number];

function isAdminCommand(word: string | undefined): word is AdminCommand {
  return COMMANDS.some((command) => command === word);
}

const MAIN_HELP_SUFFIX = `

Commands:
  bindle-server [options]                                 serve
  bindle-server reindex [options]                         import the data directory's invoice files into the index
  bindle-server export --reference-layout <dir> [options] write invoices and parcels in the reference layout
  bindle-server migrate --help                            copy all data into other storage (e.g. PostgreSQL + S3)
  bindle-server keys create-host --out <file> [--rotate]  write (or rotate) the host signing key for --signing-keys
  bindle-server gc [--dry-run] [--json] [options]         remove parcels no invoice references (safe while serving)
  bindle-server fsck [--json] [--repair] [options]        re-hash every parcel; check the index against the store`;

/**
 * Runs an admin command. Imported only here, so that a serving process never loads them (with
 * what only they use: migration, gc, fsck) and holds their code for its whole life.
 */
async function runAdminCommand(command: AdminCommand, args: string[]): Promise<number> {
  restoreYoungGenerationGrowth();
  enableCompilerTiers();
  const io: CommandIo = { env: process.env, cwd: process.cwd(), out: (text) => process.stdout.write(text) };
  if (command === 'migrate') return runMigrate(args, io);
  if (command === 'keys') return runKeys(args, io);
  // Audit records of removals go to stderr as JSON lines, and so do process warnings (the AWS
  // SDK's, with an S3 parcel store); stdout holds the report.
  const audit = pino({ base: { command } }, pino.destination({ fd: 2, sync: true }));
  const stopLoggingWarnings = logProcessWarnings(audit);
  const run = { reindex: runReindex, export: runExport, gc: runGc, fsck: runFsck }[command];
  try {
    return await run(args, { ...io, audit });
  } finally {
    stopLoggingWarnings();
  }
}

async function main(argv: string[]): Promise<number> {
  const [first] = argv;
  if (isAdminCommand(first)) return runAdminCommand(first, argv.slice(1));
  if (first !== undefined && !first.startsWith('-')) {
    throw new BindleError('invalid_config', `unknown command "${first}"; the commands are ${COMMANDS.join(', ')} (see bindle-server --help)`);
  }
  const invocation = await parseServerInvocation(argv, process.env, process.cwd());
  if (invocation.kind === 'help') {
    process.stdout.write(`${invocation.text}${MAIN_HELP_SUFFIX}\n`);
    return 0;
  }
  if (invocation.kind === 'version') {
    process.stdout.write(`bindle-server ${VERSION}\n`);
    return 0;
  }
  const { config } = invocation;
  const server = await openServer(config, { hostLabel: `bindle-server host key (${hostname()})` });
  // Room for the external memory of streamed bodies before V8 collects the whole heap (see old-generation-headroom.ts).
  keepOldGenerationHeadroom();
  // What start-up left behind is garbage or fragments that an idle server never compacts.
  compactHeap();
  await server.listen();
  // Started without V8's optimizing and baseline compilers, so that what they compile for start-up code does not stay resident.
  enableCompilerTiers();
  // A long-running server keeps whatever V8's young generation grows to (see young-generation.ts).
  boundYoungGeneration();
  // And the heap it grows under load, unless it compacts once the load is over.
  const stopIdleCompaction = compactWhenIdle(server.app.server, {
    onIdle: ({ unusedBytes, compacted, ms }) =>
      server.log.debug(
        { unusedBytes, compacted, ms: Math.round(ms) },
        compacted ? 'idle after a busy spell: compacted the heap' : 'idle after a busy spell: too little of the heap unused to compact',
      ),
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    stopIdleCompaction();
    server.log.info({ signal }, 'shutting down: finishing in-flight requests');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    void server.reloadTrust();
  });
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (isBindleError(err) || err instanceof StartupError) {
      process.stderr.write(`bindle-server: ${err.message}\n`);
      process.exit(err instanceof StartupError ? 1 : 2);
    }
    process.stderr.write(`bindle-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
