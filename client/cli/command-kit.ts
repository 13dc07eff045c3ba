/**
 * Shared pieces of the command definitions: wiring a command body to its CliContext, parsing
 * ids, roles, numbers and output formats from arguments (bad values are usage errors), and
 * loading an invoice: from the server, the local cache only while the server is unreachable.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { Invoice, SignatureRole } from '../../schema/index.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { formatId, parseId, type BindleId } from '../../core/ids/bindle-id.js';
import { parseRole } from '../../core/signing/roles.js';
import { verifyInvoice } from '../../core/signing/verification.js';
import type { CliContext } from './cli-context.js';
import { attempt, CliFailure, describeError, usageFailure } from './cli-error.js';
import { warnLine } from './cli-io.js';
import { markCachedYanked, readCachedInvoice } from './local-cache.js';
import type { exportTarball } from '../standalone/standalone-bindle.js';

/** Runs a command body with the context of the command it belongs to. */
export type ContextProvider = (command: Command) => CliContext;

/** A command body: the context, then the command's arguments and options as commander passes them. */
export type CommandBody<A extends unknown[]> = (ctx: CliContext, ...args: A) => Promise<void>;

/**
 * Adapts a body to commander's action signature (arguments..., options, command). The types
 * of `A` are the caller's promise about the command's declared arguments and options.
 */
export function action<A extends unknown[]>(contextOf: ContextProvider, body: CommandBody<A>): (...all: unknown[]) => Promise<void> {
  return async (...all: unknown[]) => {
    const command = all[all.length - 1] as Command;
    await body(contextOf(command), ...(all.slice(0, -1) as A));
  };
}

/** Parses a `name/version` argument; an invalid one is a usage error. */
export function parseIdArg(text: string): BindleId {
  try {
    return parseId(text);
  } catch (err) {
    const what = `invalid bindle id ${JSON.stringify(text)}`;
    const message = isBindleError(err) ? err.message : String(err);
    // parseId's own message may already start with `what`; say it once.
    throw usageFailure(what, message.startsWith(`${what}: `) ? message.slice(what.length + 2) : message);
  }
}

/** Parses a comma-separated role list (`creator,approver`); an invalid one is a usage error. */
export function parseRolesArg(text: string, flag: string): SignatureRole[] {
  const roles: SignatureRole[] = [];
  for (const part of text.split(',')) {
    let role: SignatureRole;
    try {
      role = parseRole(part);
    } catch (err) {
      throw usageFailure(`invalid ${flag}`, isBindleError(err) ? err.message : String(err));
    }
    if (!roles.includes(role)) roles.push(role);
  }
  return roles;
}

/** A commander parser for whole numbers in [min, max]. */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    const n = Number(value.trim());
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/**
 * A commander parser for an optional boolean value (`--strict`, `--strict true`, `--strict=false`).
 * Commander also passes an option's preset (`true` for the bare flag) through the parser.
 */
export function booleanValue(value: string | boolean): boolean {
  if (typeof value === 'boolean') return value;
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === 'yes' || v === '1') return true;
  if (v === 'false' || v === 'no' || v === '0') return false;
  throw new InvalidArgumentError('expected true or false');
}

/** Output formats of the read commands. */
export type OutputFormat = 'toml' | 'json' | 'table';

/**
 * Adds `--output <format>` and, unless `-f` means something else on the command, the
 * reference's `-f, --output-format <format>` (the same thing; they may not both be given).
 */
export function addOutputOptions(command: Command, formats: readonly OutputFormat[], defaultFormat: OutputFormat, referenceAlias = true): Command {
  const list = formats.join(', ');
  command.addOption(new Option('--output <format>', `output format: ${list} (default: ${defaultFormat})`).choices(formats).conflicts('outputFormat'));
  if (referenceAlias) command.addOption(new Option('-f, --output-format <format>', "same as --output (the reference CLI's name)").choices(formats));
  return command;
}

/** The output format chosen with addOutputOptions. */
export function chosenFormat(opts: { output?: string; outputFormat?: string }, defaultFormat: OutputFormat): OutputFormat {
  return (opts.output ?? opts.outputFormat ?? defaultFormat) as OutputFormat;
}

/** True for a failure to reach the server at all (refused, timed out, a proxy's 502-504). */
export function isUnreachable(err: unknown): boolean {
  return isBindleError(err, 'unavailable');
}

/**
 * The cached invoice of `id` for use while the server is unreachable (`offline` is why), verified
 * again against the keyring and strategy; a yanked one needs `yanked`. Says on stderr that the
 * cached copy is used. Undefined when the cache does not hold it.
 */
export async function offlineInvoice(ctx: CliContext, id: BindleId, yanked: boolean, offline: unknown): Promise<Invoice | undefined> {
  const name = formatId(id);
  const cached = await attempt(`could not read the cached invoice of ${name}`, () => readCachedInvoice(ctx.settings.bindleDir, id));
  if (cached === undefined) return undefined;
  await attempt(
    `could not trust the cached invoice of ${name}`,
    async () => {
      verifyInvoice(cached, await ctx.keyring(), ctx.settings.strategy);
      if (cached.yanked === true && !yanked) throw new BindleError('yanked', `bindle ${name} is yanked`);
    },
    ctx.trustHint,
  );
  warnLine(ctx.io, `bindle: warning: the server is unreachable (${describeError(offline)}): using the cached copy of ${name}`);
  return cached;
}

/**
 * The invoice of `id` from the server (which the client verifies; a yanked invoice needs
 * `yanked`). The cache never answers for a reachable server: when the server says the bindle is
 * yanked, the cached copy is marked so; only when the server is unreachable is the cached copy
 * used (verified again, and the CLI says so on stderr).
 */
export async function loadInvoice(ctx: CliContext, id: BindleId, yanked: boolean): Promise<{ invoice: Invoice; fromCache: boolean }> {
  const name = formatId(id);
  const client = await ctx.client();
  try {
    return { invoice: await client.getInvoice(name, { yanked, verify: true }), fromCache: false };
  } catch (err) {
    if (isBindleError(err, 'yanked')) await markCachedYanked(ctx.settings.bindleDir, id).catch(() => undefined);
    const cached = isUnreachable(err) ? await offlineInvoice(ctx, id, yanked, err) : undefined;
    if (cached === undefined) throw new CliFailure(`could not get invoice ${name}`, err, hintOf(ctx.trustHint, err));
    return { invoice: cached, fromCache: true };
  }
}

/** `{ hint }` for a CliFailure when `hint` has one for `err`, else `{}`. */
export function hintOf(hint: (err: unknown) => string | undefined, err: unknown): { hint?: string } {
  const text = hint(err);
  return text === undefined ? {} : { hint: text };
}

/**
 * Runs `exportTarball` (passed in, so that callers keep loading it lazily) with its hashing and
 * compressing steps shown on a terminal; resolves with the tarball's path.
 */
export async function exportWithProgress(ctx: CliContext, run: typeof exportTarball, bindleDir: string, outDir: string): Promise<string> {
  const steps = ctx.stepReporter();
  try {
    return await run(bindleDir, outDir, {
      onHashing: (done, total) => steps.step('Checking parcels', done, total),
      onCompressing: (done, total) => steps.step('Compressing', done, total),
    });
  } finally {
    steps.finish();
  }
}
