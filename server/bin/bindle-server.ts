#!/usr/bin/env node
/**
 * `bindle-server`: the server bundle's entry (scripts/bundle-server.mjs), loaded by ./launch.cts.
 * The one place that picks concrete implementations (file parcel store, SQLite index, keyring verifier, configured auth), starts the HTTP server and
 * shuts it down gracefully on SIGTERM/SIGINT. Two subcommands move data in and out in the
 * reference layout: `reindex` imports a data directory's invoice files into the index,
 * `export --reference-layout DIR` writes the index's invoices and parcels to DIR; `migrate` and
 * `keys create-host`, `gc` and `fsck` are in admin-commands.ts. SIGHUP reloads the trusted keyring.
 */
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { VERSION } from '../../core/version.js';
import { parseServerInvocation } from '../config/server-config.js';
import { openServer, type RunningServer } from '../server-runtime.js';
import { pino } from 'pino';
import { runFsck, runGc, runKeys, runMigrate, type CommandIo } from './admin-commands.js';
import { enableCompilerTiers } from '../compiler-tiers.js';
import { boundYoungGeneration, restoreYoungGenerationGrowth } from '../young-generation.js';
import { compactHeap, compactWhenIdle } from '../heap-compaction.js';
import { keepOldGenerationHeadroom } from '../old-generation-headroom.js';
import { logProcessWarnings } from '../process-warnings.js';

type Subcommand = 'reindex' | 'export';

const SUBCOMMAND_HELP: Readonly<Record<Subcommand, string>> = {
  reindex: `Usage: bindle-server reindex [options]

Imports the invoice files of the data directory in the reference layout
(<directory>/invoices/<sha256(name/version)>/invoice.toml, e.g. copied from a reference server
or written by 'bindle-server export') into the invoice index, the only record of invoices.
Ids already indexed with the same invoice are left alone; a file holding the same invoice
yanked yanks it in the index; a file holding a different invoice is reported as a conflict and
the index keeps its own. Exit status 1 when a file was skipped or conflicts.

Options: those of the server (see bindle-server --help), e.g. -d, --directory <path>.`,
  export: `Usage: bindle-server export --reference-layout <dir> [options]

Writes every invoice in the index (yanked ones too) and every stored parcel they list to <dir>
in the reference layout (invoices/<id>/invoice.toml, parcels/<sha256>/parcel.dat and
label.toml), which reference tooling and 'bindle-server reindex' read. Files are written
atomically; running it again completes an interrupted export.

Options: --reference-layout <dir>, and those of the server (see bindle-server --help).`,
};

const MAIN_HELP_SUFFIX = `

Commands:
  bindle-server [options]                                 serve
  bindle-server reindex [options]                         import the data directory's invoice files into the index
  bindle-server export --reference-layout <dir> [options] write invoices and parcels in the reference layout
  bindle-server migrate --help                            copy all data into other storage (e.g. PostgreSQL + S3)
  bindle-server keys create-host --out <file> [--rotate]  write (or rotate) the host signing key for --signing-keys
  bindle-server gc [--dry-run] [--json] [options]         remove parcels no invoice references (safe while serving)
  bindle-server fsck [--json] [--repair] [options]        re-hash every parcel; check the index against the store`;

/** Takes `--reference-layout <dir>` (or `=<dir>`) out of the arguments. */
function takeReferenceLayout(args: string[]): { dir: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let dir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--reference-layout') {
      dir = args[i + 1];
      if (dir === undefined || dir.startsWith('-')) throw new BindleError('invalid_config', 'option --reference-layout needs a directory (see --help)');
      i++;
    } else if (arg.startsWith('--reference-layout=')) {
      dir = arg.slice('--reference-layout='.length);
    } else {
      rest.push(arg);
    }
  }
  return { dir, rest };
}

async function runSubcommand(sub: Subcommand, server: RunningServer, directory: string, exportDir: string | undefined): Promise<number> {
  if (sub === 'export') {
    const target = resolve(exportDir ?? '');
    const report = await server.exportReferenceLayout(target);
    process.stdout.write(
      `exported to ${target}: ${report.invoices} invoices, ${report.parcels} parcels, ${report.missingParcels} parcels never uploaded\n`,
    );
    return 0;
  }
  const report = await server.reindex();
  process.stdout.write(
    `reindexed ${directory}: ${report.added} added, ${report.alreadyIndexed} already indexed, ${report.yanked} yanked, ` +
      `${report.conflicts.length} conflicting, ${report.skipped.length} skipped\n`,
  );
  for (const c of report.conflicts) process.stdout.write(`  conflict ${c.path}: ${c.reason}\n`);
  for (const s of report.skipped) process.stdout.write(`  skipped ${s.path}: ${s.reason}\n`);
  return report.skipped.length > 0 || report.conflicts.length > 0 ? 1 : 0;
}

/**
 * Runs an admin command. Imported only here, so that a serving process never loads them (with
 * what only they use: migration, gc, fsck) and holds their code for its whole life.
 */
async function runAdminCommand(command: 'migrate' | 'gc' | 'fsck' | 'keys', args: string[]): Promise<number> {
  restoreYoungGenerationGrowth();
  enableCompilerTiers();
  const io: CommandIo = { env: process.env, cwd: process.cwd(), out: (text) => process.stdout.write(text) };
  if (command === 'migrate') return runMigrate(args, io);
  if (command === 'keys') return runKeys(args, io);
  // Audit records of removals go to stderr as JSON lines, and so do process warnings (the AWS
  // SDK's, with an S3 parcel store); stdout holds the report.
  const audit = pino({ base: { command } }, pino.destination({ fd: 2, sync: true }));
  const stopLoggingWarnings = logProcessWarnings(audit);
  try {
    return await (command === 'gc' ? runGc : runFsck)(args, { ...io, audit });
  } finally {
    stopLoggingWarnings();
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'migrate' || argv[0] === 'gc' || argv[0] === 'fsck' || argv[0] === 'keys') return runAdminCommand(argv[0], argv.slice(1));
  const sub: Subcommand | undefined = argv[0] === 'reindex' || argv[0] === 'export' ? argv[0] : undefined;
  let args = sub === undefined ? argv : argv.slice(1);
  let exportDir: string | undefined;
  if (sub === 'export') ({ dir: exportDir, rest: args } = takeReferenceLayout(args));
  const invocation = await parseServerInvocation(args, process.env, process.cwd());
  if (invocation.kind === 'help') {
    process.stdout.write(`${sub === undefined ? invocation.text + MAIN_HELP_SUFFIX : SUBCOMMAND_HELP[sub]}\n`);
    return 0;
  }
  if (invocation.kind === 'version') {
    process.stdout.write(`bindle-server ${VERSION}\n`);
    return 0;
  }
  if (sub === 'export' && exportDir === undefined) {
    throw new BindleError('invalid_config', 'export needs --reference-layout <dir> (see bindle-server export --help)');
  }
  const { config } = invocation;
  const server = await openServer(config, { hostLabel: `bindle-server host key (${hostname()})` });
  if (sub !== undefined) {
    restoreYoungGenerationGrowth();
    enableCompilerTiers();
    try {
      return await runSubcommand(sub, server, config.directory, exportDir);
    } finally {
      await server.close();
    }
  }
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
    if (isBindleError(err)) {
      process.stderr.write(`bindle-server: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`bindle-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
