#!/usr/bin/env node
/**
 * `bindle-server`: the entry point. The one place that picks concrete implementations (file
 * parcel store, SQLite index, keyring verifier, configured auth), starts the HTTP server and
 * shuts it down gracefully on SIGTERM/SIGINT; SIGHUP reloads the trusted keyring.
 * `bindle-server reindex` rebuilds the index from the invoice files on disk; `migrate` and
 * `keys create-host` are in admin-commands.ts.
 */
import { hostname } from 'node:os';
import { isBindleError } from '../../core/errors/bindle-error.js';
import { VERSION } from '../../core/version.js';
import { parseServerInvocation } from '../config/server-config.js';
import { openServer } from '../server-runtime.js';
import { runKeys, runMigrate, type CommandIo } from './admin-commands.js';

const SUBCOMMANDS_HELP = `
Other commands:
  bindle-server reindex [options]   rebuild the index from the invoice files on disk
  bindle-server migrate --help      copy all data into other storage (e.g. PostgreSQL + S3)
  bindle-server keys create-host --out <file> [--rotate]
                                    write (or rotate) the host signing key for --signing-keys
`;

async function main(argv: string[]): Promise<number> {
  const io: CommandIo = { env: process.env, cwd: process.cwd(), out: (text) => process.stdout.write(text) };
  if (argv[0] === 'migrate') return runMigrate(argv.slice(1), io);
  if (argv[0] === 'keys') return runKeys(argv.slice(1), io);
  const reindexOnly = argv[0] === 'reindex';
  const args = reindexOnly ? argv.slice(1) : argv;
  const invocation = await parseServerInvocation(args, process.env, process.cwd());
  if (invocation.kind === 'help') {
    process.stdout.write(`${invocation.text}${SUBCOMMANDS_HELP}`);
    return 0;
  }
  if (invocation.kind === 'version') {
    process.stdout.write(`bindle-server ${VERSION}\n`);
    return 0;
  }
  const { config } = invocation;
  const server = await openServer(config, { hostLabel: `bindle-server host key (${hostname()})` });
  if (reindexOnly) {
    const report = await server.reindex();
    await server.close();
    process.stdout.write(
      `reindexed ${config.directory}: ${report.added} added, ${report.alreadyIndexed} already indexed, ${report.skipped.length} skipped\n`,
    );
    for (const s of report.skipped) process.stdout.write(`  skipped ${s.path}: ${s.reason}\n`);
    return report.skipped.length > 0 ? 1 : 0;
  }
  await server.listen();
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
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
