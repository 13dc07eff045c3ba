/**
 * The administrative subcommands of `bindle-server` besides serving: `migrate` (copy a server's
 * data into other storage backends), `keys create-host` (write a host signing key file for a
 * shared deployment, or rotate it), `gc` (remove parcels no invoice references) and `fsck`
 * (re-hash every parcel, check the index against the store). Each parses its own flags, runs,
 * and returns an exit code.
 */
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { AuditLogger } from '../audit/audit-log.js';
import { parseServerInvocation, type ServerConfig } from '../config/server-config.js';
import { collectGarbage } from '../service/garbage-collect.js';
import { fsck, hasProblems, type FsckReport } from '../service/fsck.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { ParcelStore } from '../storage/parcel-store.js';
import { describeIndex, describeParcels, openInvoiceIndex, openParcelStore, parseIndexSpec, parseParcelsSpec } from '../storage/backends.js';
import { createHostKeyFile } from '../host-identity.js';
import { migrate, type MigrationEnd } from '../service/migrate.js';

/** What a subcommand writes to. */
export interface CommandIo {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  out(text: string): void;
  /** Where gc and fsck --repair write their audit records (the server's log); none when absent. */
  readonly audit?: AuditLogger;
}

function parseFlags(cmd: Command, argv: readonly string[]): 'help' | 'run' {
  cmd
    .exitOverride()
    .allowExcessArguments(false)
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: () => undefined })
    .configureHelp({ helpWidth: 80 })
    .helpOption('-h, --help', 'print this help and exit');
  try {
    cmd.parse([...argv], { from: 'user' });
    return 'run';
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') return 'help';
      throw new BindleError('invalid_config', `${err.message.replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ')} (see --help)`, { cause: err });
    }
    throw err;
  }
}

const MIGRATE_EPILOG = `
Index specs: sqlite:<path> or postgres://user:password@host:5432/database.
Parcel specs: file:<data directory> or
  s3://<bucket>[/<prefix>]?endpoint=<url>&region=<region>&forcePathStyle=true&requestDeadline=<duration>
  (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
The source is only read and must already exist; stop the servers writing to it first.
Copies every parcel (the destination verifies its sha256 and size), then every invoice
byte for byte with its signatures and yank state, then the tombstones of hard deletes.
Safe to run again: whatever is already
at the destination is skipped. Exit status 1 when anything could not be copied.
`;

/** `bindle-server migrate`: see MIGRATE_EPILOG. */
export async function runMigrate(argv: readonly string[], io: CommandIo): Promise<number> {
  const cmd = new Command('bindle-server migrate')
    .description("Copy a Bindle server's data into other storage backends (e.g. SQLite + files to PostgreSQL + S3).")
    .addOption(new Option('--from-index <spec>', 'index to copy from').makeOptionMandatory())
    .addOption(new Option('--from-parcels <spec>', 'parcel store to copy from').makeOptionMandatory())
    .addOption(new Option('--to-index <spec>', 'index to copy into (created if needed)').makeOptionMandatory())
    .addOption(new Option('--to-parcels <spec>', 'parcel store to copy into (created if needed)').makeOptionMandatory())
    .addOption(new Option('-q, --quiet', 'print only the summary'));
  if (parseFlags(cmd, argv) === 'help') {
    io.out(cmd.helpInformation() + MIGRATE_EPILOG);
    return 0;
  }
  const flag = (name: string): string => String(cmd.getOptionValue(name));
  const fromIndex = parseIndexSpec(flag('fromIndex'), '--from-index', io.cwd);
  const fromParcels = parseParcelsSpec(flag('fromParcels'), '--from-parcels', io.cwd, io.env);
  const toIndex = parseIndexSpec(flag('toIndex'), '--to-index', io.cwd);
  const toParcels = parseParcelsSpec(flag('toParcels'), '--to-parcels', io.cwd, io.env);
  if (describeIndex(fromIndex) === describeIndex(toIndex) || describeParcels(fromParcels) === describeParcels(toParcels)) {
    throw new BindleError('invalid_config', 'the source and the destination must be different storage');
  }
  const quiet = cmd.getOptionValue('quiet') === true;
  const opened: Array<{ close(): Promise<void> }> = [];
  const open = async <T extends { close(): Promise<void> }>(p: Promise<T>): Promise<T> => {
    const it = await p;
    opened.push(it);
    return it;
  };
  try {
    const from: MigrationEnd = {
      index: await open(openInvoiceIndex(fromIndex, { mustExist: true })),
      parcels: await open(openParcelStore(fromParcels, { mustExist: true })),
    };
    const to: MigrationEnd = { index: await open(openInvoiceIndex(toIndex)), parcels: await open(openParcelStore(toParcels)) };
    io.out(`migrating ${describeIndex(fromIndex)} + ${describeParcels(fromParcels)}\n     into ${describeIndex(toIndex)} + ${describeParcels(toParcels)}\n`);
    const report = await migrate(from, to, {
      ...(quiet ? {} : { onProgress: (e) => { if (e.outcome !== 'present') io.out(`  ${e.outcome} ${e.kind} ${e.item}\n`); } }),
    });
    io.out(
      `parcels: ${report.parcelsCopied} copied (${report.bytesCopied} bytes), ${report.parcelsPresent} already there\n` +
        `invoices: ${report.invoicesCopied} copied, ${report.invoicesYanked} yank copied, ${report.invoicesPresent} already there\n` +
        `tombstones: ${report.tombstonesCopied} copied, ${report.tombstonesPresent} already there\n` +
        `failures: ${report.failures.length}\n`,
    );
    for (const f of report.failures) io.out(`  ${f.item}: ${f.reason}\n`);
    return report.failures.length > 0 ? 1 : 0;
  } finally {
    for (const it of opened.reverse()) await it.close();
  }
}

/** `bindle-server keys create-host`: writes a host signing key file (or rotates one). */
export async function runKeys(argv: readonly string[], io: CommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'create-host') {
    if (sub === '--help' || sub === '-h') {
      io.out('Usage: bindle-server keys create-host --out <file> [--label <label>] [--rotate]\n\n' +
        'Writes the host signing key every replica of a shared deployment is given (--signing-keys).\n');
      return 0;
    }
    const what = sub === undefined ? 'missing keys command' : `unknown keys command "${sub}"`;
    throw new BindleError('invalid_config', `${what}; the only one is create-host (see bindle-server keys --help)`);
  }
  const cmd = new Command('bindle-server keys create-host')
    .description('Write a new host signing key (mode 0600) for --signing-keys / BINDLE_SIGNING_KEYS.')
    .addOption(new Option('-o, --out <file>', 'secret key file to write').makeOptionMandatory())
    .addOption(new Option('--label <label>', 'the key\'s label, shown as "by" on host signatures').default('bindle-server host key'))
    .addOption(new Option('--rotate', 'the file exists: put a new host key first (it signs from now on) and keep the old ones (still published for verification)'));
  if (parseFlags(cmd, rest) === 'help') {
    io.out(cmd.helpInformation());
    return 0;
  }
  const path = resolve(io.cwd, String(cmd.getOptionValue('out')));
  const label = String(cmd.getOptionValue('label'));
  if (label.trim() === '') throw new BindleError('invalid_config', '--label must not be empty');
  const created = await createHostKeyFile(path, { label, rotate: cmd.getOptionValue('rotate') === true });
  io.out(`wrote ${path}: host key ${created.publicKey}${created.keys > 1 ? ` signs from now on; ${created.keys - 1} older key(s) kept` : ''}\n`);
  return 0;
}

/** Takes the boolean flags `names` out of `argv`; the rest are server options. */
function takeSwitches(argv: readonly string[], names: readonly string[]): { set: Set<string>; rest: string[] } {
  const set = new Set<string>();
  const rest: string[] = [];
  for (const arg of argv) {
    if (names.includes(arg)) set.add(arg);
    else rest.push(arg);
  }
  return { set, rest };
}

/**
 * Parses the server options in `argv` (those of `bindle-server`, e.g. --directory, --index,
 * --parcels, --config-path), opens the index and parcel store they name (which must exist) and
 * runs `body` on them. Prints `help` for --help.
 */
async function withStorage(
  argv: readonly string[],
  io: CommandIo,
  help: string,
  body: (index: InvoiceIndex, parcels: ParcelStore, config: ServerConfig) => Promise<number>,
): Promise<number> {
  const invocation = await parseServerInvocation(argv, io.env, io.cwd);
  if (invocation.kind !== 'serve') {
    io.out(help);
    return 0;
  }
  const { config } = invocation;
  const index = await openInvoiceIndex(config.index, { mustExist: true });
  try {
    const parcels = await openParcelStore(config.parcels, {
      mustExist: true,
      staging: { stagingMaxAgeMs: config.stagingMaxAgeMs, stagingSweepMs: 0 },
    });
    try {
      return await body(index, parcels, config);
    } finally {
      await parcels.close();
    }
  } finally {
    await index.close();
  }
}

const GC_HELP = `Usage: bindle-server gc [--dry-run] [--json] [server options]

Removes the parcels no invoice references (after hard deletes, or uploads whose invoice never
came). Safe while servers (any number of replicas) run on the same storage: a parcel stored
less than --gc-grace ago (default 1h, at least --staging-max-age) is kept, and each candidate's
references are checked again after it is hidden and before it is removed; one an invoice
needs by then is restored. Server options name the storage: --directory, --index, --parcels,
--config-path, --gc-grace (see bindle-server --help).

  --dry-run   report what would be removed; remove nothing
  --json      print the report as JSON
Exit status 1 when a parcel could not be removed.
`;

/** \`bindle-server gc\`: see GC_HELP. */
export async function runGc(argv: readonly string[], io: CommandIo): Promise<number> {
  const { set, rest } = takeSwitches(argv, ['--dry-run', '--json']);
  return withStorage(rest, io, GC_HELP, async (index, parcels, config) => {
    const report = await collectGarbage(index, parcels, {
      graceMs: config.gcGraceMs,
      dryRun: set.has('--dry-run'),
      ...(io.audit === undefined ? {} : { audit: io.audit }),
    });
    if (set.has('--json')) {
      io.out(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      io.out(
        `${report.dryRun ? 'would remove' : 'removed'} ${report.removed} parcels (${report.removedBytes} bytes); ` +
          `${report.scanned} scanned, ${report.referenced} referenced, ${report.young} within the grace period, ` +
          `${report.kept} needed again and kept, ${report.failures.length} failed\n`,
      );
      for (const f of report.failures) io.out(`  failed ${f.sha256}: ${f.reason}\n`);
    }
    return report.failures.length > 0 ? 1 : 0;
  });
}

const FSCK_HELP = `Usage: bindle-server fsck [--json] [--repair] [server options]

Re-hashes every stored parcel and checks the invoice index against the parcel store.
Problems: corrupt parcels (data whose sha256 is not its name), stored sizes that differ from
an invoice's label, parcels invoices list that are not stored (never uploaded, or lost).
Orphans (parcels no invoice lists) are reported too; 'bindle-server gc' removes them.
Server options name the storage: --directory, --index, --parcels, --config-path.

  --repair    remove corrupt parcels, so that they can be uploaded again (nothing else is
              ever changed; a good parcel is never touched)
  --json      print the report as JSON
Exit status 0 when there is no problem, 1 when there is (also after a repair).
`;

function fsckText(report: FsckReport): string {
  const lines = [
    `checked ${report.invoices} invoices, ${report.parcels} parcels (${report.bytes} bytes)`,
    `corrupt: ${report.corrupt.length}, size mismatches: ${report.sizeMismatches.length}, missing: ${report.missing.length}, ` +
      `unreadable: ${report.failures.length}, orphans: ${report.orphans.length}, repaired: ${report.repaired.length}`,
    ...report.corrupt.map((c) => `  corrupt ${c.sha256}: the data hashes to ${c.actualSha256}${listed(c.invoices)}`),
    ...report.sizeMismatches.map((m) => `  size mismatch ${m.sha256}: stored ${m.storedSize} bytes, labels say ${m.labelSizes.join(', ')}${listed(m.invoices)}`),
    ...report.missing.map((m) => `  missing ${m.sha256}${listed(m.invoices)}`),
    ...report.failures.map((f) => `  unreadable ${f.sha256}: ${f.reason}`),
    ...report.orphans.map((o) => `  orphan ${o}`),
    ...report.repaired.map((r) => `  repaired ${r}: removed; upload it again`),
    hasProblems(report) ? 'problems found' : 'clean',
  ];
  return `${lines.join('\n')}\n`;
}

function listed(invoices: readonly string[]): string {
  return invoices.length === 0 ? '' : ` (listed by ${invoices.join(', ')})`;
}

/** \`bindle-server fsck\`: see FSCK_HELP. */
export async function runFsck(argv: readonly string[], io: CommandIo): Promise<number> {
  const { set, rest } = takeSwitches(argv, ['--json', '--repair']);
  return withStorage(rest, io, FSCK_HELP, async (index, parcels) => {
    const report = await fsck(index, parcels, { repair: set.has('--repair'), ...(io.audit === undefined ? {} : { audit: io.audit }) });
    io.out(set.has('--json') ? `${JSON.stringify({ ...report, problems: hasProblems(report) }, null, 2)}\n` : fsckText(report));
    return hasProblems(report) ? 1 : 0;
  });
}
