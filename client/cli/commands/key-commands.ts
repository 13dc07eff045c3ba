/**
 * Keys and signing: `keys create` (a new secret key, file mode 0600, and its public key on the
 * keyring), `keys add`, `keys print`, `keys fetch` (the server's host keys onto the keyring),
 * and `sign-invoice`. Files use the reference formats and are written atomically.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { KeyEntry, KeyRing } from '../../../schema/index.js';
import { KEY_FILE_VERSION, parseKeyRing, renderKeyRing } from '../../../core/codec/key-file-codec.js';
import { parseInvoice, renderInvoice } from '../../../core/codec/invoice-codec.js';
import { BindleError } from '../../../core/errors/bindle-error.js';
import { writeFileAtomic } from '../../../core/fs-atomic.js';
import { canonicalId } from '../../../core/ids/bindle-id.js';
import { Keyring } from '../../../core/signing/keyring.js';
import { createSecretKey, publicKeyEntry } from '../../../core/signing/keys.js';
import { SecretKeyStore } from '../../../core/signing/secret-key-store.js';
import { signInvoice } from '../../../core/signing/sign.js';
import type { CliContext } from '../cli-context.js';
import { attempt, describeError } from '../cli-error.js';
import { warnLine } from '../cli-io.js';
import { action, addOutputOptions, chosenFormat, parseRolesArg, type ContextProvider } from '../command-kit.js';
import { resolveSecretsFile } from '../settings.js';
import { chooseSigningKey, signingTime, type SigningKeyOptions } from '../signing-key.js';

const SECRETS_FILE_HELP =
  'the secret-key file (default: $XDG_DATA_HOME/bindle/secret_keys.toml, or the reference location $XDG_CONFIG_HOME/bindle/secret_keys.toml when only that exists)';

interface CreateKeyOptions {
  roles: string;
  secretsFile?: string;
  skipKeyring?: boolean;
}

interface PrintKeyOptions {
  secretsFile?: string;
  labelMatching?: string;
  keyring?: boolean;
  output?: string;
  outputFormat?: string;
}

interface FetchKeyOptions {
  keyServer?: string;
  host?: boolean;
  roles?: string;
}

interface SignInvoiceOptions extends SigningKeyOptions {
  out?: string;
}

async function createKey(ctx: CliContext, label: string, opts: CreateKeyOptions): Promise<void> {
  const roles = parseRolesArg(opts.roles, '--roles');
  const file = await resolveSecretsFile(opts.secretsFile, ctx.settings, ctx.io);
  ctx.print(`Writing keys to ${file}`);
  const key = await attempt(`could not create a key in ${file}`, async () => {
    const { store, created } = await SecretKeyStore.loadOrCreate(file, label, roles);
    if (created) {
      ctx.print(`File ${file} does not exist. Creating it.`);
      const first = store.entries()[0];
      if (first === undefined) throw new BindleError('internal', `the new secret-key file ${file} holds no key`);
      return first;
    }
    const fresh = createSecretKey(label, roles);
    store.add(fresh);
    await store.save(file);
    return fresh;
  });
  const entry = publicKeyEntry(key);
  ctx.print(`Created key '${label}' with role(s) ${roles.join(', ')}; its public key is ${entry.key}`);
  if (opts.skipKeyring !== true) {
    const keyringPath = ctx.settings.keyringPath;
    await attempt(`could not add the new key to the keyring ${keyringPath}`, async () => {
      const keyring = await Keyring.loadOrEmpty(keyringPath);
      keyring.add(entry);
      await keyring.save(keyringPath);
    });
    ctx.print(`Added the public key to the keyring ${keyringPath}`);
  }
}

async function addKey(ctx: CliContext, label: string, rolesText: string, key: string): Promise<void> {
  const roles = parseRolesArg(rolesText, 'ROLES');
  const keyringPath = ctx.settings.keyringPath;
  const added = await attempt(`could not add key '${label}' to the keyring ${keyringPath}`, async () => {
    const keyring = await Keyring.loadOrEmpty(keyringPath);
    if (keyring.contains(key)) return false;
    keyring.add({ label, roles, key });
    await keyring.save(keyringPath);
    return true;
  });
  ctx.print(added ? `Wrote key to keyring file at ${keyringPath}` : `The keyring ${keyringPath} already holds this key: unchanged`);
}

function printKeyring(ctx: CliContext, entries: KeyEntry[], opts: PrintKeyOptions): void {
  const doc: KeyRing = { version: KEY_FILE_VERSION, key: entries };
  ctx.print(chosenFormat(opts, 'toml') === 'json' ? JSON.stringify(doc, null, 2) : renderKeyRing(doc));
}

async function printKeys(ctx: CliContext, opts: PrintKeyOptions): Promise<void> {
  const matches = (label: string): boolean => opts.labelMatching === undefined || label.toLowerCase().includes(opts.labelMatching.toLowerCase());
  if (opts.keyring === true) {
    const keyringPath = ctx.settings.keyringPath;
    const keyring = await attempt(`could not read the keyring ${keyringPath}`, () => Keyring.load(keyringPath));
    printKeyring(ctx, keyring.entries().filter((e) => matches(e.label)), opts);
    return;
  }
  const file = await resolveSecretsFile(opts.secretsFile, ctx.settings, ctx.io);
  const store = await attempt(`could not read the secret-key file ${file}`, () => SecretKeyStore.load(file));
  const entries: KeyEntry[] = [];
  for (const secret of store.entries()) {
    if (!matches(secret.label)) continue;
    try {
      entries.push(publicKeyEntry(secret));
    } catch (err) {
      warnLine(ctx.io, `bindle: warning: skipping malformed key '${secret.label}': ${describeError(err)}`);
    }
  }
  printKeyring(ctx, entries, opts);
}

/** The keyring published at a full `/bindle-keys` URL (TOML or JSON by its Content-Type). */
async function fetchKeyringFrom(url: string, timeoutMs: number): Promise<KeyRing> {
  const reply = await fetch(url, { headers: { accept: 'application/toml' }, signal: AbortSignal.timeout(timeoutMs) });
  const text = await reply.text();
  if (!reply.ok) {
    throw new BindleError('unavailable', `${url} answered HTTP ${reply.status}: ${text.trim().slice(0, 300) || 'no message'}`);
  }
  const json = /json/i.test(reply.headers.get('content-type') ?? '');
  return parseKeyRing(text, json ? 'json' : 'toml');
}

async function fetchKeys(ctx: CliContext, opts: FetchKeyOptions): Promise<void> {
  const keyServer = opts.host === true ? undefined : opts.keyServer;
  const roles = opts.roles === undefined ? undefined : parseRolesArg(opts.roles, '--roles');
  let fetched: KeyRing;
  if (keyServer !== undefined) {
    ctx.print(`Fetching host keys from ${keyServer}`);
    fetched = await attempt(`could not fetch keys from ${keyServer}`, () => fetchKeyringFrom(keyServer, ctx.settings.timeoutMs ?? 30_000));
  } else {
    ctx.print(`Fetching host keys from ${ctx.settings.serverUrl}`);
    const client = await ctx.plainClient();
    fetched = await attempt('could not fetch the server keys', () => client.getHostKeys(roles));
  }
  const keyringPath = ctx.settings.keyringPath;
  const added = await attempt(`could not add the fetched keys to the keyring ${keyringPath}`, async () => {
    const keyring = await Keyring.loadOrEmpty(keyringPath);
    const fresh: KeyEntry[] = [];
    for (const entry of fetched.key ?? []) {
      if (roles !== undefined && !entry.roles.some((r) => roles.includes(r))) continue;
      if (keyring.contains(entry.key)) continue;
      try {
        keyring.add(entry);
        fresh.push(entry);
      } catch (err) {
        warnLine(ctx.io, `bindle: warning: skipping malformed key '${entry.label}': ${describeError(err)}`);
      }
    }
    await keyring.save(keyringPath);
    return fresh;
  });
  for (const entry of added) ctx.print(`  trusted '${entry.label}' (${entry.roles.join(', ')}): ${entry.key}`);
  ctx.print(`Wrote ${added.length} keys to keyring file at ${keyringPath}`);
}

async function signInvoiceFile(ctx: CliContext, file: string, opts: SignInvoiceOptions): Promise<void> {
  const path = resolve(ctx.io.cwd, file);
  const invoice = await attempt(`could not read invoice ${path}`, async () => parseInvoice(await readFile(path, 'utf8')));
  const name = `${invoice.bindle.name}/${invoice.bindle.version}`;
  const chosen = await attempt(`could not sign ${name}`, () => chooseSigningKey(ctx, opts));
  const at = signingTime(ctx.io.env);
  const signed = await attempt(`could not sign ${name}`, () => signInvoice(invoice, chosen.role, chosen.key, ...(at === undefined ? [] : [at])));
  const out = resolve(ctx.io.cwd, opts.out ?? `./invoice-${canonicalId({ name: invoice.bindle.name, version: invoice.bindle.version })}.toml`);
  await attempt(`could not write the signed invoice to ${out}`, () => writeFileAtomic(out, renderInvoice(signed), 0o644));
  ctx.print(`Signed ${path} with role as '${chosen.role}', label as '${chosen.key.label}' and wrote to ${out}`);
}

/** Registers `keys …` and `sign-invoice` on `program`. */
export function registerKeyCommands(program: Command, contextOf: ContextProvider): void {
  const keys = program.command('keys').description('Create and manage signing keys and the keyring of trusted keys');

  keys
    .command('create')
    .description(
      "Create a signing key in the secret-key file (created with mode 0600 if missing, else appended to) and add its public key to the keyring. The LABEL is typically 'Name <email>'.",
    )
    .argument('<label>', "the key's label, e.g. 'Matt <me@example.com>'")
    .option('--roles <roles>', 'comma-separated roles of the key (creator, approver, proxy, host)', 'creator')
    .addOption(new Option('-f, --secrets-file <file>', SECRETS_FILE_HELP).env('BINDLE_SECRET_FILE'))
    .option('--skip-keyring', 'do not add the public key to the keyring')
    .action(action(contextOf, createKey));

  keys
    .command('add')
    .description('Add a public key to the keyring (a key already there is left unchanged)')
    .argument('<label>', "the key's label, e.g. 'Boaty McBoatface <boaty@example.com>'")
    .argument('<roles>', 'comma-separated roles to trust the key for, e.g. creator,approver')
    .argument('<key>', 'the base64 public key')
    .action(action(contextOf, addKey));

  addOutputOptions(
    keys
      .command('print')
      .description('Print keyring entries (public keys) for the keys in the secret-key file, or with --keyring the entries of the keyring')
      .addOption(new Option('-f, --secrets-file <file>', SECRETS_FILE_HELP).env('BINDLE_SECRET_FILE'))
      .option('-m, --label-matching <text>', 'only keys whose label contains this text')
      .option('--keyring', 'print the keyring (-r/--keyring) instead of the secret keys'),
    ['toml', 'json'],
    'toml',
    false,
  ).action(action(contextOf, printKeys));

  keys
    .command('fetch')
    .description("Fetch the server's host keys from its /bindle-keys endpoint and add the new ones to the keyring")
    .addOption(new Option('--key-server <url>', 'a full /bindle-keys URL to fetch from instead of the server (-s)').env('BINDLE_KEY_SERVER'))
    .option('--host', 'fetch from the server given by -s/--server (BINDLE_URL), even if --key-server is set')
    .option('--roles <roles>', 'only keys with one of these comma-separated roles')
    .action(action(contextOf, fetchKeys));

  program
    .command('sign-invoice')
    .description('Sign an invoice file with one of your secret keys and write the signed invoice')
    .argument('<invoice>', 'the invoice file to sign')
    .addOption(new Option('-f, --secrets-file <file>', SECRETS_FILE_HELP).env('BINDLE_SECRET_FILE'))
    .option('-r, --role <role>', 'the role to sign as: c[reator], a[pprover], p[roxy], h[ost]', 'creator')
    .addOption(new Option('-l, --label <label>', 'use the key with exactly this label').conflicts('labelMatching'))
    .option('-m, --label-matching <text>', 'use the first key whose label contains this text')
    .option('-o, --out <file>', 'where to write the signed invoice (default: ./invoice-<sha256 of name/version>.toml; may be the input file)')
    .action(action(contextOf, signInvoiceFile));
}
