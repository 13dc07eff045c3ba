/**
 * Shared pieces of the command definitions: wiring a command body to its CliContext, parsing
 * ids, roles, numbers and output formats from arguments (bad values are usage errors), and
 * loading an invoice the way the reference CLI does (the local cache first, then the server).
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { Invoice, SignatureRole } from '../../schema/index.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { formatId, parseId, type BindleId } from '../../core/ids/bindle-id.js';
import { parseRole } from '../../core/signing/roles.js';
import { verifyInvoice } from '../../core/signing/verification.js';
import type { CliContext } from './cli-context.js';
import { attempt, usageFailure } from './cli-error.js';
import { readCachedInvoice } from './local-cache.js';

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

/**
 * The invoice of `id`, from the local cache when it holds it (verified again against the
 * keyring and strategy, as the reference's cache does without the verification) or else from
 * the server (which the client verifies). A yanked invoice needs `yanked`.
 */
export async function loadInvoice(ctx: CliContext, id: BindleId, yanked: boolean): Promise<{ invoice: Invoice; fromCache: boolean }> {
  const name = formatId(id);
  const cached = await attempt(`could not read the cached invoice of ${name}`, () => readCachedInvoice(ctx.settings.bindleDir, id));
  if (cached !== undefined) {
    await attempt(
      `could not trust the cached invoice of ${name}`,
      async () => {
        verifyInvoice(cached, await ctx.keyring(), ctx.settings.strategy);
        if (cached.yanked === true && !yanked) throw new BindleError('yanked', `bindle ${name} is yanked`);
      },
      ctx.trustHint,
    );
    return { invoice: cached, fromCache: true };
  }
  const client = await ctx.client();
  const invoice = await attempt(`could not get invoice ${name}`, () => client.getInvoice(name, { yanked, verify: true }), ctx.trustHint);
  return { invoice, fromCache: false };
}
