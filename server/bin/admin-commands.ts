/**
 * The administrative subcommands of `bindle-server` besides serving: `reindex` (import a data
 * directory's invoice files in the reference layout into the index), `export` (write the index's
 * invoices and parcels in the reference layout), `migrate` (copy a server's data into other
 * storage backends), `keys create-host` (write a host signing key file for a shared deployment,
 * or rotate it), `gc` (remove parcels no invoice references) and `fsck` (re-hash every parcel,
 * check the index against the store). Each parses its own flags, runs, and returns an exit code.
 * Those that work on existing data refuse storage that does not exist, and create nothing then.
 */
import { stat } from 'node:fs/promises';
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
import { exportReferenceLayout } from '../service/reference-export.js';
import { reindex } from '../service/reindex.js';
import { InvoiceFiles } from '../storage/invoice-files.js';

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
        `OCI blob links: ${report.linksCopied} copied, ${report.linksPresent} already there\n` +
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
  if ((await stat(path).catch(() => undefined))?.isDirectory() === true) {
    throw new BindleError('invalid_config', `--out ${path} is a directory; name the key file to write, e.g. ${resolve(path, 'host-keys.toml')}`);
  }
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
 * Opens the index and parcel store `config` names (which must exist: a missing one is
 * invalid_config, and nothing is created) and runs `body` on them.
 */
async function withStorage(
  config: ServerConfig,
  body: (index: InvoiceIndex, parcels: ParcelStore) => Promise<number>,
): Promise<number> {
  const index = await openInvoiceIndex(config.index, { mustExist: true });
  try {
    const parcels = await openParcelStore(config.parcels, {
      mustExist: true,
      staging: { stagingMaxAgeMs: config.stagingMaxAgeMs, stagingSweepMs: 0 },
    });
    try {
      return await body(index, parcels);
    } finally {
      await parcels.close();
    }
  } finally {
    await index.close();
  }
}

/**
 * Runs `body` with the server configuration the server options in `argv` give (those of
 * `bindle-server`, e.g. --directory, --index, --parcels, --config-path); prints `help` instead
 * for --help and --version.
 */
async function withConfig(
  argv: readonly string[],
  io: CommandIo,
  help: string,
  body: (config: ServerConfig) => Promise<number>,
): Promise<number> {
  const invocation = await parseServerInvocation(argv, io.env, io.cwd);
  if (invocation.kind !== 'serve') {
    io.out(help);
    return 0;
  }
  return body(invocation.config);
}

const REINDEX_HELP = `Usage: bindle-server reindex [options]

Imports the invoice files of the data directory in the reference layout
(<directory>/invoices/<sha256(name/version)>/invoice.toml, e.g. copied from a reference server
or written by 'bindle-server export') into the invoice index, the only record of invoices.
Ids already indexed with the same invoice are left alone; a file holding the same invoice
yanked yanks it in the index; a file holding a different invoice is reported as a conflict and
the index keeps its own. The data directory must exist. Exit status 1 when a file was skipped
or conflicts.

Options: those of the server (see bindle-server --help), e.g. -d, --directory <path>.
`;

/** \`bindle-server reindex\`: see REINDEX_HELP. The index is created if needed, the data directory never. */
export async function runReindex(argv: readonly string[], io: CommandIo): Promise<number> {
  return withConfig(argv, io, REINDEX_HELP, async (config) => {
    const found = await stat(config.directory).catch(() => undefined);
    if (found?.isDirectory() !== true) {
      throw new BindleError(
        'invalid_config',
        `${config.sources.directory}: data directory ${config.directory} ${found === undefined ? 'does not exist' : 'is not a directory'}; ` +
          'reindex imports the invoice files of an existing one',
      );
    }
    const index = await openInvoiceIndex(config.index);
    try {
      const report = await reindex(new InvoiceFiles(config.directory), index);
      io.out(
        `reindexed ${config.directory}: ${report.added} added, ${report.alreadyIndexed} already indexed, ${report.yanked} yanked, ` +
          `${report.conflicts.length} conflicting, ${report.skipped.length} skipped\n`,
      );
      for (const c of report.conflicts) io.out(`  conflict ${c.path}: ${c.reason}\n`);
      for (const s of report.skipped) io.out(`  skipped ${s.path}: ${s.reason}\n`);
      return report.skipped.length > 0 || report.conflicts.length > 0 ? 1 : 0;
    } finally {
      await index.close();
    }
  });
}

const EXPORT_HELP = `Usage: bindle-server export --reference-layout <dir> [options]

Writes every invoice in the index (yanked ones too) and every stored parcel they list to <dir>
in the reference layout (invoices/<id>/invoice.toml, parcels/<sha256>/parcel.dat and
label.toml), which reference tooling and 'bindle-server reindex' read. Files are written
atomically; running it again completes an interrupted export. The index and parcel store must
exist. Each parcel is re-hashed as it is copied; a corrupt one is not written, and is listed.
Exit status 1 when a parcel was corrupt.

Options: --reference-layout <dir>, and those of the server (see bindle-server --help).
`;

/** Takes `--reference-layout <dir>` (or `=<dir>`) out of the arguments. */
function takeReferenceLayout(args: readonly string[]): { dir: string | undefined; rest: string[] } {
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

/** \`bindle-server export\`: see EXPORT_HELP. */
export async function runExport(argv: readonly string[], io: CommandIo): Promise<number> {
  const { dir, rest } = takeReferenceLayout(argv);
  return withConfig(rest, io, EXPORT_HELP, async (config) => {
    if (dir === undefined) throw new BindleError('invalid_config', 'export needs --reference-layout <dir> (see bindle-server export --help)');
    return withStorage(config, async (index, parcels) => {
      const target = resolve(io.cwd, dir);
      const report = await exportReferenceLayout(index, parcels, target);
      io.out(`exported to ${target}: ${report.invoices} invoices, ${report.parcels} parcels, ${report.missingParcels} parcels never uploaded\n`);
      for (const sha256 of report.corruptParcels) {
        io.out(`  not exported: parcel ${sha256} is corrupt (its stored bytes are not its digest; 'bindle-server fsck --repair' removes it, to be uploaded again)\n`);
      }
      return report.corruptParcels.length > 0 ? 1 : 0;
    });
  });
}

const GC_HELP = `Usage: bindle-server gc [--dry-run] [--json] [server options]

Removes the parcels no invoice references (after hard deletes, or uploads whose invoice never
came). Safe while servers (any number of replicas) run on the same storage: a parcel stored
less than --gc-grace ago (default 1h, at least --staging-max-age) is kept, so is one linked in
an OCI repository (uploaded or mounted there) less than --gc-grace ago, and each candidate's
references are checked again after it is hidden and before it is removed; one an invoice or a
new link needs by then is restored. A removed parcel's OCI blob links go with it. Server
options name the storage: --directory, --index, --parcels, --config-path, --gc-grace (see
bindle-server --help).

  --dry-run   report what would be removed; remove nothing
  --json      print the report as JSON
Exit status 1 when a parcel could not be removed.
`;

/** \`bindle-server gc\`: see GC_HELP. */
export async function runGc(argv: readonly string[], io: CommandIo): Promise<number> {
  const { set, rest } = takeSwitches(argv, ['--dry-run', '--json']);
  return withConfig(rest, io, GC_HELP, (config) => withStorage(config, async (index, parcels) => {
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
          `${report.linked} linked within it, ${report.kept} needed again and kept, ${report.linksRemoved} blob links removed, ` +
          `${report.failures.length} failed\n`,
      );
      for (const f of report.failures) io.out(`  failed ${f.sha256}: ${f.reason}\n`);
    }
    return report.failures.length > 0 ? 1 : 0;
  }));
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
  return withConfig(rest, io, FSCK_HELP, (config) => withStorage(config, async (index, parcels) => {
    const report = await fsck(index, parcels, { repair: set.has('--repair'), ...(io.audit === undefined ? {} : { audit: io.audit }) });
    io.out(set.has('--json') ? `${JSON.stringify({ ...report, problems: hasProblems(report) }, null, 2)}\n` : fsckText(report));
    return hasProblems(report) ? 1 : 0;
  }));
}
