/**
 * The commands that change the server: `push` (a standalone bindle or a bindle in an OCI image
 * layout, optionally signing it first with `--sign`; an identical re-push is a no-op, a
 * different release under the same id fails), `push-invoice`, `push-file`, `yank` and `delete`.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { Invoice } from '../../../schema/index.js';
import { parseInvoice } from '../../../core/codec/invoice-codec.js';
import { isBindleError } from '../../../core/errors/bindle-error.js';
import { formatId, type BindleId } from '../../../core/ids/bindle-id.js';
import { publicKeyOf } from '../../../core/signing/keys.js';
import { signInvoice } from '../../../core/signing/sign.js';
import type { PushReport } from '../../lib/workflows.js';
import type { StandaloneBindle } from '../../standalone/standalone-bindle.js';
import type { CliContext } from '../cli-context.js';
import { attempt, usageFailure } from '../cli-error.js';
import { action, parseIdArg, type ContextProvider } from '../command-kit.js';
import { labelForFile } from '../file-labels.js';
import { chooseSigningKey, signingTime, type SigningKeyOptions } from '../signing-key.js';
import { resolveStandaloneSource } from '../standalone-source.js';
import { formatBytes } from '../transfer-progress.js';

interface PushOptions extends SigningKeyOptions {
  path?: string;
  sign?: boolean;
  output?: string;
  tag?: string;
}

/** What `push` reads: a standalone bindle, or the bindle in an OCI image layout (a directory holding `oci-layout`). */
async function readPushSource(
  ctx: CliContext,
  source: string | undefined,
  opts: PushOptions,
): Promise<{ bindle: StandaloneBindle & { cleanup(): Promise<void> }; expectedId: BindleId | undefined }> {
  const { isOciLayout, readLayoutBindle } = await import('../../standalone/oci-layout.js');
  const layout = opts.path === undefined && source !== undefined ? resolve(ctx.io.cwd, source) : undefined;
  if (layout !== undefined && (await isOciLayout(layout))) {
    const bindle = await attempt(`could not read the bindle in the OCI layout ${layout}`, () => readLayoutBindle(layout, opts.tag));
    // The config is the invoice as the exporting server served it, with that server's host
    // counter-signature: meaningless to (and, under most strategies, refused by) another server,
    // which adds its own. The other signatures do not cover it, so they stay valid.
    const invoice = { ...bindle.invoice, signature: (bindle.invoice.signature ?? []).filter((sig) => sig.role !== 'host') };
    return { bindle: { ...bindle, invoice, cleanup: () => Promise.resolve() }, expectedId: undefined };
  }
  if (opts.tag !== undefined) throw usageFailure('cannot use --tag', 'it chooses a bindle in an OCI image layout, and the source is not one');
  const located = await resolveStandaloneSource(source, opts.path, ctx.io.cwd);
  const { readStandalone } = await import('../../standalone/standalone-bindle.js');
  const checking = ctx.stepReporter(opts.output !== 'json');
  const bindle = await attempt(`could not read standalone bindle ${located.path}`, () =>
    readStandalone(located.path, {
      onHashing: (done, total) => {
        // The parcel files are being read: the HTTP stack loads meanwhile.
        ctx.preloadClient();
        checking.step('Checking parcels', done, total);
      },
    }),
  ).finally(() => checking.finish());
  return { bindle, expectedId: located.expectedId };
}

interface PushFileOptions {
  name?: string;
  mediaType?: string;
}

/** Hint for a push refused because the id is taken by a different release. */
function pushHint(err: unknown): string | undefined {
  if (isBindleError(err, 'unauthenticated') || isBindleError(err, 'forbidden')) {
    return 'set --http-user/--http-password (BINDLE_HTTP_USER/BINDLE_HTTP_PASSWORD) or --token-file (BINDLE_TOKEN_FILE)';
  }
  if (isBindleError(err, 'unknown_signing_key') || isBindleError(err, 'no_known_key') || isBindleError(err, 'missing_role')) {
    return "the server must trust the signer's key: add it to the server's keyring";
  }
  return undefined;
}

/**
 * The invoice signed with the chosen key, unless that key already signed it (then unchanged).
 * When the server already holds this release signed by the same key in the same role, that
 * signature's time is reused (the signed text has no time, so the signature is the same), so
 * that re-running a publishing job yields the identical invoice and the push is a no-op;
 * otherwise the time is SOURCE_DATE_EPOCH or now.
 */
async function signForPush(ctx: CliContext, invoice: Invoice, opts: SigningKeyOptions): Promise<Invoice> {
  const name = formatId({ name: invoice.bindle.name, version: invoice.bindle.version });
  const what = `could not sign ${name}`;
  const chosen = await attempt(what, () => chooseSigningKey(ctx, opts));
  const publicKey = await attempt(what, () => publicKeyOf(chosen.key));
  if ((invoice.signature ?? []).some((s) => s.key === publicKey)) {
    ctx.print(`Invoice ${name} is already signed by '${chosen.key.label}'`);
    return invoice;
  }
  const client = await ctx.plainClient();
  const onServer = await attempt(`could not check for ${name} on the server`, async () => {
    try {
      return await client.getInvoice(name, { yanked: true, verify: false });
    } catch (err) {
      if (isBindleError(err, 'not_found')) return undefined;
      throw err;
    }
  });
  const earlier = onServer?.signature?.find((s) => s.key === publicKey && s.role === chosen.role);
  const at = earlier?.at ?? signingTime(ctx.io.env);
  const signed = await attempt(what, () => signInvoice(invoice, chosen.role, chosen.key, ...(at === undefined ? [] : [at])));
  ctx.print(`Signed ${name} as ${chosen.role} with '${chosen.key.label}'`);
  return signed;
}

async function push(ctx: CliContext, source: string | undefined, opts: PushOptions): Promise<void> {
  if (opts.sign !== true && (opts.role !== undefined || opts.label !== undefined || opts.labelMatching !== undefined)) {
    throw usageFailure('cannot use --role, --label or --label-matching', 'they choose the signing key, which needs --sign');
  }
  const { bindle, expectedId } = await readPushSource(ctx, source, opts);
  try {
    const name = formatId({ name: bindle.invoice.bindle.name, version: bindle.invoice.bindle.version });
    if (expectedId !== undefined && formatId(expectedId) !== name) {
      throw usageFailure(`standalone bindle ${bindle.root} does not match`, `it holds ${name}, not ${formatId(expectedId)}`);
    }
    if (opts.sign === true) bindle.invoice = await signForPush(ctx, bindle.invoice, opts);
    const client = await ctx.plainClient();
    const { pushStandalone } = await import('../../lib/workflows.js');
    const reporter = ctx.reporter(opts.output === 'json' ? undefined : (label) => `Uploaded parcel ${label.sha256} (${label.name}, ${formatBytes(label.size)})`);
    let result: PushReport;
    try {
      result = await attempt(`could not push ${name} to ${ctx.settings.serverUrl}`, () => pushStandalone(client, bindle, { onProgress: (e) => reporter.onEvent(e) }), pushHint);
    } finally {
      reporter.finish();
    }
    if (opts.output === 'json') {
      ctx.print(JSON.stringify(result, null, 2));
    } else if (result.noop) {
      ctx.print(`Bindle ${name} is already on ${ctx.settings.serverUrl} with identical content: nothing to do (no-op)`);
    } else {
      const invoiceState = result.created ? 'invoice created' : 'invoice already there';
      ctx.print(`Pushed bindle ${name} to ${ctx.settings.serverUrl}: ${invoiceState}, ${result.uploaded.length} parcel(s) uploaded, ${result.alreadyPresent.length} already present`);
    }
  } finally {
    await bindle.cleanup();
  }
}

async function pushInvoice(ctx: CliContext, file: string): Promise<void> {
  const path = resolve(ctx.io.cwd, file);
  const invoice = await attempt(`could not read invoice ${path}`, async () =>
    parseInvoice(await readFile(path, 'utf8'), extname(path).toLowerCase() === '.json' ? 'json' : 'toml'),
  );
  const name = formatId({ name: invoice.bindle.name, version: invoice.bindle.version });
  const client = await ctx.plainClient();
  const reply = await attempt(`could not push invoice ${name}`, () => client.createInvoice(invoice), pushHint);
  ctx.print(`Invoice ${name} created`);
  if (reply.missing.length > 0) {
    ctx.print(`${reply.missing.length} parcel(s) still to upload (with 'bindle push-file ${name} <file>'):`);
    for (const label of reply.missing) ctx.print(`  ${label.sha256}  ${label.name} (${formatBytes(label.size)})`);
  }
}

async function pushFile(ctx: CliContext, idText: string, file: string, opts: PushFileOptions): Promise<void> {
  const id = parseIdArg(idText);
  const name = formatId(id);
  const path = resolve(ctx.io.cwd, file);
  const label = await attempt(`could not read ${path}`, () =>
    labelForFile(path, {
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.mediaType !== undefined ? { mediaType: opts.mediaType } : {}),
    }),
  );
  ctx.print(`Uploading file ${path} (${formatBytes(label.size)}, sha256 ${label.sha256}) to ${name}`);
  const client = await ctx.plainClient();
  const outcome = await attempt(`could not upload ${path} to ${name}`, () => client.createParcel(name, label, () => createReadStream(path)), pushHint);
  ctx.print(outcome === 'created' ? 'File successfully uploaded' : `Parcel ${label.sha256} is already on the server: nothing to upload`);
}

async function yank(ctx: CliContext, idText: string): Promise<void> {
  const id = parseIdArg(idText);
  const client = await ctx.plainClient();
  await attempt(`could not yank ${formatId(id)}`, () => client.yankInvoice(formatId(id)), pushHint);
  ctx.print(`Bindle ${formatId(id)} yanked`);
}

async function hardDelete(ctx: CliContext, idText: string, opts: { reason?: string }): Promise<void> {
  const id = parseIdArg(idText);
  const client = await ctx.plainClient();
  await attempt(`could not delete ${formatId(id)}`, () => client.deleteInvoice(formatId(id), opts.reason === undefined ? {} : { reason: opts.reason }), pushHint);
  ctx.print(`Bindle ${formatId(id)} deleted`);
}

/** Registers the commands that write to the server on `program`. */
export function registerWriteCommands(program: Command, contextOf: ContextProvider): void {
  program
    .command('push')
    .description(
      'Push a standalone bindle, or the bindle in an OCI image layout (a directory with an oci-layout file, e.g. from ' +
        '"bindle export --oci-layout" or "skopeo copy ... oci:<dir>"): create its invoice, then upload only the parcels the server is missing. ' +
        'Pushing the identical release again is a no-op (exit 0); a different release under the same id fails.',
    )
    .argument('[source]', 'a standalone bindle directory or <sha256 of name/version>.tar.gz, or an OCI image layout directory; or, with -p, the bindle id')
    .option('--tag <tag>', 'with an OCI image layout holding several bindles: the one listed under this tag (org.opencontainers.image.ref.name)')
    .option('-p, --path <dir>', 'the directory holding <sha256>.tar.gz or <sha256>/ for the id given as argument (as the reference CLI)')
    .option('--sign', 'sign the invoice with a key from the secret-key file before pushing (skipped if that key already signed it)')
    .option('--role <role>', 'with --sign: the role to sign as (creator, approver, proxy, host)', undefined)
    .option('-l, --label <label>', 'with --sign: use the key with exactly this label')
    .option('-m, --label-matching <text>', 'with --sign: use the first key whose label contains this text')
    .addOption(new Option('-f, --secrets-file <file>', 'with --sign: the secret-key file (default: see "bindle keys create --help")').env('BINDLE_SECRET_FILE'))
    .addOption(new Option('--output <format>', 'print the outcome as JSON ({id, created, uploaded, alreadyPresent, noop})').choices(['json']))
    .action(action(contextOf, push));

  program
    .command('push-invoice')
    .description('Create an invoice on the server from a TOML (or .json) file; its parcels can then be pushed with push-file')
    .argument('[file]', 'the invoice file', './invoice.toml')
    .action(action(contextOf, pushInvoice));

  program
    .command('push-file')
    .description("Upload a file as a parcel of an invoice already on the server (its label's sha256 and size must be on the invoice)")
    .argument('<bindle>', 'the bindle id, e.g. example.com/mybindle/1.2.3')
    .argument('<file>', 'the file to upload')
    .option('-n, --name <name>', 'the parcel name (default: the file name)')
    .option('-m, --media-type <type>', 'the media type (default: guessed from the extension, else application/octet-stream)')
    .action(action(contextOf, pushFile));

  program
    .command('yank')
    .description('Yank a bindle: it stays on the server but is no longer served without --yanked')
    .argument('<bindle>', 'the bindle id, e.g. example.com/mybindle/1.2.3')
    .action(action(contextOf, yank));

  program
    .command('delete')
    .description(
      'Delete a bindle for good (needs the admin grant): the server removes its invoice, keeps a signed tombstone so the id ' +
        'cannot be pushed again unless an admin allows it, and garbage collection later removes its unreferenced parcels',
    )
    .argument('<bindle>', 'the bindle id, e.g. example.com/mybindle/1.2.3')
    .option('--reason <text>', 'why, recorded in the tombstone')
    .action(action(contextOf, hardDelete));
}
