/**
 * The commands that read bindles: `info`, `get`, `get-invoice`, `get-parcel`, `export` (into an
 * OCI image layout) and `search`.
 * Invoices are verified against the keyring; parcels are re-hashed before they are kept;
 * `--yanked` lets a yanked bindle through (the reference has this flag inverted).
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { Invoice, Label, QueryReply } from '../../../schema/index.js';
import { renderDocument } from '../../../core/codec/document-codec.js';
import { invoiceParcels, labelOnInvoice, renderInvoice } from '../../../core/codec/invoice-codec.js';
import { formatId, isSha256Hex, type BindleId } from '../../../core/ids/bindle-id.js';
import { attempt, CliFailure, describeError, usageFailure } from '../cli-error.js';
import { warnLine } from '../cli-io.js';
import { BindleError, isBindleError } from '../../../core/errors/bindle-error.js';
import {
  action,
  addOutputOptions,
  booleanValue,
  chosenFormat,
  exportWithProgress,
  integerIn,
  hintOf,
  isUnreachable,
  loadInvoice,
  offlineInvoice,
  parseIdArg,
  type ContextProvider,
} from '../command-kit.js';
import type { CliContext } from '../cli-context.js';
import {
  cachedBindlePath,
  cachedParcelPath,
  copyCachedParcel,
  fileExists,
  markCachedYanked,
  MAX_FILE_NAME_BYTES,
  readCachedInvoice,
  refuseExisting,
  removingCorruptParcels,
  writeNewFile,
} from '../local-cache.js';
import { formatBytes } from '../transfer-progress.js';

const ID_HELP = 'the bindle id, e.g. example.com/mybindle/1.2.3';
const YANKED_HELP = 'allow a yanked bindle (without it, fetching a yanked bindle is an error)';

interface InfoOptions {
  yanked?: boolean;
  output?: string;
  outputFormat?: string;
}

interface GetOptions {
  yanked?: boolean;
  export?: string;
  extract?: string;
}

/**
 * Where each parcel of `invoice` goes under `dir` by its label name, all checked before anything
 * is written: a name that is absolute, has a `..` segment or otherwise resolves outside `dir`, a
 * name with a segment (a file or directory name) over MAX_FILE_NAME_BYTES bytes of UTF-8, which
 * file systems refuse, and two parcels with the same name, are refused (`bad_request`, naming the
 * parcel).
 */
export function extractionPlan(invoice: Invoice, dir: string): Array<{ label: Label; dest: string }> {
  const plan = new Map<string, { label: Label; dest: string }>();
  for (const { label } of invoiceParcels(invoice)) {
    const name = label.name;
    const segments = name.split(/[\\/]/);
    const dest = resolve(dir, name);
    const inside = relative(dir, dest);
    if (name === '' || isAbsolute(name) || segments.includes('..') || inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
      throw new BindleError('bad_request', `parcel ${label.sha256} has the name ${JSON.stringify(name)}, which would be written outside ${dir}: nothing was extracted`);
    }
    const long = segments.find((segment) => Buffer.byteLength(segment, 'utf8') > MAX_FILE_NAME_BYTES);
    if (long !== undefined) {
      throw new BindleError(
        'bad_request',
        `parcel ${label.sha256} has the name ${JSON.stringify(name)}, whose part ${JSON.stringify(long)} is ${Buffer.byteLength(long, 'utf8')} bytes long: ` +
          `file systems take file names of at most ${MAX_FILE_NAME_BYTES} bytes; nothing was extracted (get it with 'bindle get-parcel ${formatId(invoice.bindle)} ${label.sha256} -o <file>')`,
      );
    }
    const other = plan.get(dest);
    if (other !== undefined && other.label.sha256 !== label.sha256) {
      throw new BindleError('bad_request', `parcels ${other.label.sha256} and ${label.sha256} are both named ${JSON.stringify(name)}: nothing was extracted`);
    }
    plan.set(dest, { label, dest });
  }
  return [...plan.values()];
}

/**
 * For `.catch` on writing parcel `label` to `dest`: ENAMETOOLONG (a path over PATH_MAX, or a file
 * system with a lower limit than extractionPlan checks) becomes `bad_request` naming the parcel;
 * any other error is thrown as it is.
 */
function nameTooLong(label: Label, dest: string): (err: unknown) => never {
  return (err) => {
    if (!(err instanceof Error && 'code' in err && err.code === 'ENAMETOOLONG')) throw err;
    throw new BindleError('bad_request', `parcel ${label.sha256} (${JSON.stringify(label.name)}) cannot be written to ${dest}: the file system says its name is too long (ENAMETOOLONG)`, { cause: err });
  };
}

interface ExportOptions {
  ociLayout?: string;
  yanked?: boolean;
  signatures?: boolean;
}

/** `get-invoice` and `get-parcel`: the new file to write, and whether a yanked bindle is allowed. */
interface OutputFileOptions {
  output: string;
  yanked?: boolean;
}

interface SearchOptions {
  query?: string;
  bindleVersion?: string;
  offset?: number;
  limit?: number;
  strict?: boolean;
  yanked?: boolean;
  output?: string;
  outputFormat?: string;
}

/**
 * `search`'s table: one `<id>:\t<description>` line per match and a summary, as the reference
 * prints it; a yanked bindle's line ends in ` [yanked]`.
 */
export function searchTable(reply: QueryReply): string {
  const lines = reply.invoices.map(
    (inv) => `${inv.bindle.name}/${inv.bindle.version}:\t${inv.bindle.description ?? '[no description available]'}${inv.yanked === true ? ' [yanked]' : ''}`,
  );
  const last = reply.offset + reply.invoices.length;
  if (reply.total > 0) {
    const more = reply.more ? ` - More results are available with --offset=${last}` : '';
    lines.push(`=== Showing results ${reply.offset + 1} to ${last} of ${reply.total} (limit: ${reply.limit})${more}`);
  } else {
    lines.push('No matching bindles were found');
  }
  return lines.join('\n');
}

async function info(ctx: CliContext, idText: string, opts: InfoOptions): Promise<void> {
  const id = parseIdArg(idText);
  const { invoice } = await loadInvoice(ctx, id, opts.yanked === true);
  const format = chosenFormat(opts, 'toml');
  ctx.print(format === 'json' ? JSON.stringify(invoice, null, 2) : renderInvoice(invoice));
}

/**
 * The cached copy of a bindle, for use while the server is unreachable (`offline` is why): when
 * the cache holds its invoice (verified again) and every parcel intact (size and sha256, as the
 * fetch workflow checks). Undefined otherwise. A corrupt cached parcel is removed from the cache,
 * with a warning on stderr naming it, as `get --extract` and `get-parcel` remove one they find,
 * so that the next `get` with the server reachable downloads it again.
 */
async function offlineCopy(ctx: CliContext, id: BindleId, yanked: boolean, offline: unknown): Promise<{ dir: string; parcels: string[] } | undefined> {
  const invoice = await offlineInvoice(ctx, id, yanked, offline);
  if (invoice === undefined) return undefined;
  const { checkCachedParcel } = await import('../../lib/workflows.js');
  const dir = cachedBindlePath(ctx.settings.bindleDir, id);
  const shas = [...new Set(invoiceParcels(invoice).map((p) => p.label.sha256))];
  const lacking: string[] = [];
  for (const sha of shas) {
    const label = labelOnInvoice(invoice, sha);
    const checked = await checkCachedParcel(join(dir, 'parcels'), label);
    if (checked.state === 'intact') continue;
    lacking.push(`${label.sha256} (${label.name})`);
    if (checked.state !== 'corrupt') continue;
    // Recursive: whatever is in the cache at a parcel's place (a directory too) is not the parcel.
    await rm(cachedParcelPath(ctx.settings.bindleDir, id, sha), { force: true, recursive: true });
    warnLine(
      ctx.io,
      `bindle: warning: a corrupt cached parcel was removed: ${describeError(checked.problem)}; ` +
        `run 'bindle get ${formatId(id)}' with the server reachable to download it again`,
    );
  }
  if (lacking.length === 0) return { dir, parcels: shas };
  warnLine(
    ctx.io,
    `bindle: warning: the cached copy of ${formatId(id)} cannot be used: it lacks ${lacking.length} parcel(s): ${lacking.join(', ')}`,
  );
  return undefined;
}

/**
 * Fetches the bindle into the cache: the invoice from the server every time (so a yank is seen),
 * parcels only when not cached intact (a corrupt cached parcel is downloaded again, with a
 * warning on stderr naming it). Only when the server is unreachable is a complete cached copy
 * used. Returns the bindle's cache directory.
 */
async function fetchIntoCache(ctx: CliContext, id: BindleId, yanked: boolean): Promise<string> {
  const name = formatId(id);
  const client = await ctx.client();
  const { fetchBindle } = await import('../../lib/workflows.js');
  const reporter = ctx.reporter((label) => `Fetched parcel ${label.sha256} (${label.name}, ${formatBytes(label.size)})`);
  let result: Awaited<ReturnType<typeof fetchBindle>>;
  try {
    result = await fetchBindle(client, name, ctx.settings.bindleDir, { yanked, onProgress: (e) => reporter.onEvent(e) });
  } catch (err) {
    reporter.finish();
    if (isBindleError(err, 'yanked')) await markCachedYanked(ctx.settings.bindleDir, id).catch(() => undefined);
    const cached = isUnreachable(err) ? await offlineCopy(ctx, id, yanked, err) : undefined;
    if (cached === undefined) throw new CliFailure(`could not get ${name}`, err, hintOf(ctx.trustHint, err));
    ctx.print(`Bindle ${name} is already in the cache ${cached.dir} (${cached.parcels.length} parcel(s)): nothing to download`);
    return cached.dir;
  }
  reporter.finish();
  for (const { problem } of result.repaired) {
    warnLine(ctx.io, `bindle: warning: a corrupt cached parcel was removed and fetched again: ${describeError(problem)}`);
  }
  ctx.print(`Fetched ${name} into ${result.dir}: ${result.fetched.length} parcel(s) downloaded, ${result.cached.length} already cached`);
  return result.dir;
}

async function get(ctx: CliContext, idText: string, opts: GetOptions): Promise<void> {
  const id = parseIdArg(idText);
  const name = formatId(id);
  const dir = await fetchIntoCache(ctx, id, opts.yanked === true);
  if (opts.extract !== undefined) {
    const extractDir = resolve(ctx.io.cwd, opts.extract);
    const what = `could not extract ${name} to ${extractDir}`;
    const invoice = await attempt(what, async () => {
      const cached = await readCachedInvoice(ctx.settings.bindleDir, id);
      if (cached === undefined) throw new BindleError('not_found', `the cache ${dir} holds no invoice`);
      return cached;
    });
    const plan = await attempt(what, () => extractionPlan(invoice, extractDir));
    await attempt(what, async () => {
      for (const { label, dest } of plan) await refuseExisting(dest, '--extract').catch(nameTooLong(label, dest));
      for (const { label, dest } of plan) {
        await mkdir(dirname(dest), { recursive: true })
          .then(() => copyCachedParcel(ctx.settings.bindleDir, id, label, dest, '--extract'))
          .catch(nameTooLong(label, dest));
      }
    }, ctx.trustHint);
    ctx.print(`Extracted ${plan.length} parcel(s) of ${name} into ${extractDir}`);
  }
  if (opts.export !== undefined) {
    const exportDir = resolve(ctx.io.cwd, opts.export);
    const { exportTarball } = await import('../../standalone/standalone-bindle.js');
    const tarball = await attempt(`could not export ${name} to ${exportDir}`, () =>
      removingCorruptParcels(ctx.settings.bindleDir, id, () => exportWithProgress(ctx, exportTarball, dir, exportDir)),
    );
    ctx.print(`Exported ${name} to ${tarball}`);
  }
}

async function getInvoice(ctx: CliContext, idText: string, opts: OutputFileOptions): Promise<void> {
  const id = parseIdArg(idText);
  const dest = resolve(ctx.io.cwd, opts.output);
  await attempt(`could not write invoice ${formatId(id)}`, () => refuseExisting(dest, '--output'));
  const { invoice } = await loadInvoice(ctx, id, opts.yanked === true);
  await attempt(`could not write invoice ${formatId(id)} to ${dest}`, () => writeNewFile(dest, renderInvoice(invoice), '--output'));
  ctx.print(`Wrote invoice ${formatId(id)} to ${dest}`);
}

async function getParcel(ctx: CliContext, idText: string, sha: string, opts: OutputFileOptions): Promise<void> {
  const id = parseIdArg(idText);
  const name = formatId(id);
  if (!isSha256Hex(sha)) throw usageFailure(`invalid parcel digest ${JSON.stringify(sha)}`, 'expected 64 lowercase hex characters (a SHA-256)');
  const dest = resolve(ctx.io.cwd, opts.output);
  const what = `could not get parcel ${sha} of ${name}`;
  await attempt(what, () => refuseExisting(dest, '--output'));
  const { invoice } = await loadInvoice(ctx, id, opts.yanked === true);
  const label = await attempt(what, () => labelOnInvoice(invoice, sha));
  const cached = cachedParcelPath(ctx.settings.bindleDir, id, sha);
  if (await fileExists(cached)) {
    await attempt(`${what} from the cache ${cached}`, () => copyCachedParcel(ctx.settings.bindleDir, id, label, dest, '--output'), ctx.trustHint);
  } else {
    const client = await ctx.client();
    const reporter = ctx.reporter((l) => `Fetched parcel ${l.sha256} (${l.name}, ${formatBytes(l.size)})`);
    reporter.onEvent({ kind: 'start', label });
    try {
      await attempt(
        what,
        () => client.downloadParcel(name, label, dest, { yanked: opts.yanked === true, onProgress: (bytes) => reporter.onEvent({ kind: 'progress', label, bytes }) }),
        ctx.trustHint,
      );
      reporter.onEvent({ kind: 'done', label });
    } finally {
      reporter.finish();
    }
  }
  ctx.print(`Wrote parcel ${sha} to ${dest}`);
}

/**
 * Writes the bindle into an OCI image layout: the invoice bytes the server serves (verified) are
 * the config of core/oci's manifest, each parcel a verified blob; tagged with the version.
 */
async function exportBindle(ctx: CliContext, idText: string, opts: ExportOptions): Promise<void> {
  const id = parseIdArg(idText);
  const name = formatId(id);
  if (opts.ociLayout === undefined) throw usageFailure('nothing to export to', 'give --oci-layout <dir>');
  const dir = resolve(ctx.io.cwd, opts.ociLayout);
  const yanked = opts.yanked === true;
  const client = await ctx.client();
  const { invoice, bytes } = await attempt(`could not export ${name}`, () => client.getInvoiceBytes(name, { yanked }), ctx.trustHint);
  const { writeBindleLayout } = await import('../../standalone/oci-layout.js');
  const reporter = ctx.reporter((label) => `Fetched parcel ${label.sha256} (${label.name}, ${formatBytes(label.size)})`);
  let report: Awaited<ReturnType<typeof writeBindleLayout>>;
  try {
    report = await attempt(
      `could not export ${name} to ${dir}`,
      () =>
        writeBindleLayout(dir, {
          configBytes: bytes,
          invoice,
          signatures: opts.signatures === true,
          concurrency: client.concurrency,
          writeParcel: async (label, dest) => {
            reporter.onEvent({ kind: 'start', label });
            await client.downloadParcel(name, label, dest, { yanked, onProgress: (n) => reporter.onEvent({ kind: 'progress', label, bytes: n }) });
            reporter.onEvent({ kind: 'done', label });
          },
        }),
      ctx.trustHint,
    );
  } finally {
    reporter.finish();
  }
  const referrers = report.referrers.length > 0 ? `, ${report.referrers.length} signature referrer(s)` : '';
  ctx.print(
    `Exported ${name} to the OCI layout ${report.root} as tag ${report.tag} (manifest ${report.manifest.digest}): ` +
      `${report.written.length} parcel(s) downloaded, ${report.present.length} already there${referrers}`,
  );
}

async function search(ctx: CliContext, opts: SearchOptions): Promise<void> {
  const client = await ctx.plainClient();
  const reply = await attempt('search failed', () =>
    client.query({
      ...(opts.query !== undefined ? { query: opts.query } : {}),
      ...(opts.bindleVersion !== undefined ? { version: opts.bindleVersion } : {}),
      ...(opts.offset !== undefined ? { offset: opts.offset } : {}),
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
      ...(opts.strict !== undefined ? { strict: opts.strict } : {}),
      ...(opts.yanked !== undefined ? { yanked: opts.yanked } : {}),
    }),
  );
  const format = chosenFormat(opts, 'table');
  if (format === 'json') ctx.print(JSON.stringify(reply, null, 2));
  else if (format === 'toml') ctx.print(renderDocument(reply, 'toml'));
  else ctx.print(searchTable(reply));
}

/** Registers the read commands on `program`. */
export function registerReadCommands(program: Command, contextOf: ContextProvider): void {
  addOutputOptions(
    program
      .command('info')
      .description('Get a bindle\'s invoice (from the cache, else the server), verify it and print it')
      .argument('<bindle>', ID_HELP)
      .option('-y, --yanked', YANKED_HELP),
    ['toml', 'json'],
    'toml',
  ).action(action(contextOf, info));

  program
    .command('get')
    .description('Download a bindle and all its parcels into the bindle directory (parcels already there are not downloaded again)')
    .argument('<bindle>', ID_HELP)
    .option('-y, --yanked', YANKED_HELP)
    .option('-e, --export <dir>', 'also write the bindle as a standalone tarball <dir>/<sha256 of name/version>.tar.gz')
    .option('-x, --extract <dir>', 'also write each parcel to <dir>/<its label name> (names escaping <dir> are refused; files are never overwritten)')
    .action(action(contextOf, get));

  program
    .command('get-invoice')
    .description('Get only the invoice (no parcels) and write it to a new file')
    .argument('<bindle>', ID_HELP)
    .option('-o, --output <file>', 'where to write the invoice (never overwritten)', './invoice.toml')
    .option('-y, --yanked', YANKED_HELP)
    .action(action(contextOf, getInvoice));

  program
    .command('get-parcel')
    .description('Get one parcel by its SHA-256, check it, and write it to a new file')
    .argument('<bindle>', ID_HELP)
    .argument('<sha256>', 'the SHA-256 of the parcel')
    .option('-o, --output <file>', 'where to write the parcel (never overwritten)', './parcel.dat')
    .option('-y, --yanked', YANKED_HELP)
    .action(action(contextOf, getParcel));

  program
    .command('export')
    .description(
      'Write a bindle into an OCI image layout (oci-layout, index.json, blobs/sha256/...) that OCI tools read, e.g. ' +
        '"skopeo copy oci:<dir>:<tag> docker://<registry>/<name>:<tag>": the invoice is the config blob, each parcel a layer, ' +
        'tagged with the version ("+" written "_"). An existing layout gains the bindle.',
    )
    .argument('<bindle>', ID_HELP)
    .option('--oci-layout <dir>', 'the OCI image layout directory (created when missing; must be empty or a layout)')
    .option('--signatures', 'also write one referrer manifest per invoice signature (artifactType application/vnd.bindle.signature.v1)')
    .option('-y, --yanked', YANKED_HELP)
    .action(action(contextOf, exportBindle));

  addOutputOptions(
    program
      .command('search')
      .description('Search the server for bindles')
      .option('-q, --query <text>', 'filter by this text, typically (part of) a bindle name')
      .option(
        '-b, --bindle-version <range>',
        'an exact version (1.0.0-beta.1) or an npm-style SemVer range (^1.2.3, ~1.2, >=1.0.0 <2.0.0, 1.2.3 - 1.5.6)',
      )
      .option('--offset <n>', 'where the page starts', integerIn(0, Number.MAX_SAFE_INTEGER))
      .option('--limit <n>', 'results per page (1-255)', integerIn(1, 255))
      .addOption(new Option('--strict [bool]', 'strict mode: every query term must be part of the name').argParser(booleanValue).preset(true))
      .addOption(new Option('--yanked [bool]', 'include yanked bindles').argParser(booleanValue).preset(true)),
    ['table', 'toml', 'json'],
    'table',
  ).action(action(contextOf, search));
}
