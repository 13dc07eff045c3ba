/**
 * The CLI's global settings: turns the parsed global options (flags, with `BINDLE_*`
 * environment variables as fallbacks) into absolute paths, a validated server URL, a
 * verification strategy and credentials. Nothing here touches the network.
 */
import { access, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BindleError } from '../../core/errors/bindle-error.js';
import { parseSyntax } from '../../core/codec/document-codec.js';
import { parseStrategy, type VerificationStrategy } from '../../core/signing/verification.js';
import type { Credentials } from '../lib/bindle-client.js';
import type { CliIo } from './cli-io.js';
import { usageFailure } from './cli-error.js';
import { defaultPaths, type DefaultPaths } from './default-paths.js';

/** The reference CLI's default server. */
export const DEFAULT_SERVER_URL = 'http://localhost:8080/v1/';
/**
 * The reference CLI's default strategy: every signature must be by a key in the keyring, and
 * there must be a host signature (so `bindle keys fetch` or `bindle keys add` comes first).
 */
export const DEFAULT_CLI_STRATEGY = 'MultipleAttestationGreedy[Host]';

/** The global options as commander parses them (flag > environment > default). */
export interface GlobalOptionValues {
  server: string;
  bindleDir?: string;
  keyring?: string;
  tokenFile?: string;
  httpUser?: string;
  httpPassword?: string;
  strategy: string;
  timeout?: number;
  retries?: number;
  insecure?: boolean;
  progress: boolean;
}

/** Resolved global settings. Paths are absolute. */
export interface CliSettings {
  /** The server base URL, always ending in `/` (e.g. `http://localhost:8080/v1/`). */
  readonly serverUrl: string;
  /** The local bindle cache (standalone layout). */
  readonly bindleDir: string;
  readonly keyringPath: string;
  readonly strategy: VerificationStrategy;
  /** The strategy as given, for messages. */
  readonly strategyName: string;
  /** The token file, and whether it was named explicitly (then it must exist). */
  readonly tokenFile: { readonly path: string; readonly explicit: boolean };
  readonly basicAuth: { readonly user: string; readonly password: string } | undefined;
  readonly timeoutMs: number | undefined;
  readonly retries: number | undefined;
  /** Skip checking the server's TLS certificate (`-k/--insecure`). */
  readonly insecure: boolean;
  /** Draw progress bars (also needs stdout to be a terminal). */
  readonly progress: boolean;
  readonly defaults: DefaultPaths;
}

function normalizeServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageFailure('invalid --server (BINDLE_URL)', `${JSON.stringify(text)} is not a URL; expected e.g. ${DEFAULT_SERVER_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageFailure('invalid --server (BINDLE_URL)', `${JSON.stringify(text)} must be an http:// or https:// URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw usageFailure('invalid --server (BINDLE_URL)', 'put credentials in --http-user/--http-password, not in the URL');
  }
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url.toString();
}

/** Resolves the global options against the environment and working directory of `io`. */
export function resolveSettings(values: GlobalOptionValues, io: CliIo): CliSettings {
  const defaults = defaultPaths(io.env);
  const abs = (p: string): string => resolve(io.cwd, p);
  let strategy: VerificationStrategy;
  try {
    strategy = parseStrategy(values.strategy);
  } catch (err) {
    throw usageFailure('invalid --strategy (BINDLE_VERIFICATION_STRATEGY)', err instanceof Error ? err.message : String(err));
  }
  const user = nonEmpty(values.httpUser);
  const password = values.httpPassword;
  if (user !== undefined && password === undefined) {
    throw usageFailure('incomplete HTTP Basic credentials', '--http-user (BINDLE_HTTP_USER) is set but --http-password (BINDLE_HTTP_PASSWORD) is not');
  }
  if (user === undefined && password !== undefined) {
    throw usageFailure('incomplete HTTP Basic credentials', '--http-password (BINDLE_HTTP_PASSWORD) is set but --http-user (BINDLE_HTTP_USER) is not');
  }
  const tokenFile = nonEmpty(values.tokenFile);
  return {
    serverUrl: normalizeServerUrl(values.server),
    bindleDir: abs(nonEmpty(values.bindleDir) ?? defaults.bindleDir),
    keyringPath: abs(nonEmpty(values.keyring) ?? defaults.keyring),
    strategy,
    strategyName: values.strategy,
    tokenFile: tokenFile === undefined ? { path: defaults.tokenFile, explicit: false } : { path: abs(tokenFile), explicit: true },
    basicAuth: user !== undefined && password !== undefined ? { user, password } : undefined,
    timeoutMs: values.timeout === undefined ? undefined : values.timeout * 1000,
    retries: values.retries,
    insecure: values.insecure === true,
    progress: values.progress,
    defaults,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The bearer token in a token file: the reference's `bindle login` file (TOML with `id_token`,
 * which is what the reference sends), a TOML file with `access_token` or `token`, or a file
 * holding just the token. Throws `invalid_config` for anything else.
 */
export function tokenFromFile(path: string, text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') throw new BindleError('invalid_config', `token file ${path} is empty`);
  if (/^\S+$/.test(trimmed) && !trimmed.includes('=')) return trimmed;
  let doc: unknown;
  try {
    doc = parseSyntax(text, 'toml');
  } catch (err) {
    throw new BindleError('invalid_config', `token file ${path} is neither a bare token nor TOML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (doc !== null && typeof doc === 'object') {
    for (const field of ['id_token', 'access_token', 'token']) {
      const value = (doc as Record<string, unknown>)[field];
      if (typeof value === 'string' && value !== '') return value;
    }
  }
  throw new BindleError('invalid_config', `token file ${path} has no id_token, access_token or token`);
}

/**
 * The credentials to send: HTTP Basic when `--http-user`/`--http-password` are set, else the
 * bearer token from the token file (the default one only when it exists), else none.
 */
export async function loadCredentials(settings: CliSettings): Promise<Credentials | undefined> {
  if (settings.basicAuth !== undefined) return { kind: 'basic', user: settings.basicAuth.user, password: settings.basicAuth.password };
  const { path, explicit } = settings.tokenFile;
  if (!explicit && !(await exists(path))) return undefined;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BindleError('invalid_config', `cannot read token file ${path} (--token-file / BINDLE_TOKEN_FILE): ${err instanceof Error ? err.message : String(err)}`);
  }
  return { kind: 'bearer', token: tokenFromFile(path, text) };
}

/**
 * The secret-key file to use: the one given (flag or BINDLE_SECRET_FILE), else the default,
 * falling back to the reference CLI's location when only that one exists.
 */
export async function resolveSecretsFile(given: string | undefined, settings: CliSettings, io: CliIo): Promise<string> {
  const explicit = nonEmpty(given);
  if (explicit !== undefined) return resolve(io.cwd, explicit);
  const { secretsFile, legacySecretsFile } = settings.defaults;
  if (!(await exists(secretsFile)) && (await exists(legacySecretsFile))) return legacySecretsFile;
  return secretsFile;
}
