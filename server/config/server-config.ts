/**
 * The server's one configuration module: reads command-line flags, `BINDLE_*` environment
 * variables and an optional TOML config file, applies defaults, validates every value once and
 * returns a frozen ServerConfig. Precedence: flag > environment > config file > default.
 * Every invalid value is a `BindleError('invalid_config')` whose message names where the value
 * came from (the flag, the environment variable, or the config file and key).
 */
import { readFile } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import { resolve } from 'node:path';
import TOML from '@iarna/toml';
import { Command, CommanderError, Option } from 'commander';
import { syntaxErrorSummary } from '../../core/codec/document-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { parseStrategy } from '../../core/signing/verification.js';
import { parseIndexSpec, parseParcelsSpec, type IndexSpec, type ParcelsSpec } from './backend-specs.js';
import { MAX_BYTE_SIZE, parseByteSize, SIZE_RULE } from './byte-sizes.js';
import { DURATION_RULE, MAX_DURATION_MS, parseDuration } from './durations.js';
import { defaultMaxConnections, openFileLimit } from '../http/connection-limit.js';
import { DEFAULT_BODY_IDLE_TIMEOUT_MS, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_SEND_TIMEOUT_MS } from '../http/request-timeouts.js';
import { DEFAULT_STAGING_MAX_AGE_MS } from '../storage/parcel-store.js';

/** Default of gcGraceMs (raised to the staging max age when that is longer). */
export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The validated, frozen configuration of one server process. Paths are absolute. */
export interface ServerConfig {
  /** Where to listen. `host` is an IP address (IPv6 without brackets) or a host name. */
  readonly address: { readonly host: string; readonly port: number };
  /**
   * Where a listener of its own serves `/metrics` (then the main address does not); undefined:
   * `/metrics` is served on the main address. Like `/healthz`, it needs no authentication.
   */
  readonly metricsAddress?: { readonly host: string; readonly port: number };
  /** The data directory holding invoices, parcels and the index. */
  readonly directory: string;
  /** The invoice index (default: SQLite at `<directory>/index.sqlite`). */
  readonly index: IndexSpec;
  /** The parcel store (default: files under `<directory>`). */
  readonly parcels: ParcelsSpec;
  /**
   * The keyring of trusted public keys. At the default path a missing file is an empty keyring;
   * a keyring named explicitly (`keyringSource` set) must exist, or the server does not start.
   */
  readonly keyringPath: string;
  /** Where the keyring path was given (e.g. `--keyring`); undefined when it is the default. */
  readonly keyringSource?: string;
  /**
   * The host's secret signing keys. Created with a fresh host key on first start (mode 0600)
   * only with the embedded SQLite index; with a shared index a missing file is a start-up error.
   */
  readonly signingKeysPath: string;
  /** The verification strategy, as given (already checked by parseStrategy). */
  readonly strategy: string;
  readonly htpasswdFile?: string;
  /** Static bearer tokens: one `name:sha256hex-of-token` per line. */
  readonly tokenFile?: string;
  readonly oidc?: {
    readonly issuerUrl: string;
    readonly clientId: string;
    readonly deviceUrl: string;
    readonly jwksFile?: string;
  };
  /**
   * The ACL file granting push/yank/admin on name prefixes (server/auth/acl-authorizer.ts).
   * Without it, every authenticated principal may write any name. Needs authentication.
   */
  readonly aclFile?: string;
  /** True when the server performs no authentication at all (everything is allowed). */
  readonly unauthenticated: boolean;
  /**
   * True when `unauthenticated` was not asked for but follows from "no authenticator configured
   * and a loopback address": the entry point logs that it serves unauthenticated on loopback only.
   */
  readonly implicitUnauthenticated: boolean;
  readonly tls?: { readonly certPath: string; readonly keyPath: string };
  readonly maxInvoiceBytes: number;
  readonly maxParcelBytes: number;
  readonly logLevel: LogLevel;
  readonly shutdownGraceMs: number;
  /** A request whose body makes no progress for this long is aborted with 408 (at least 1 ms). */
  readonly bodyIdleTimeoutMs: number;
  /** A connection whose reply has waited this long for its client to take any of it is closed (at least 1 ms). */
  readonly sendTimeoutMs: number;
  /** Age after which a staged upload counts as abandoned and is removed (parcel store StagingOptions). */
  readonly stagingMaxAgeMs: number;
  /** The request line and headers must arrive within this time, else 408 (at least 1 ms). */
  readonly headersTimeoutMs: number;
  /** Open connections at most (at least 1); by default from this process's open-file limit (server/http/connection-limit.ts). */
  readonly maxConnections: number;
  /**
   * Failed authentication attempts a client address may make within `windowMs` before its
   * requests with credentials get 429 (server/auth/failed-attempt-limiter.ts).
   */
  readonly authFailureLimit: { readonly maxFailures: number; readonly windowMs: number };
  /**
   * Addresses and CIDR ranges of the reverse proxies whose `X-Forwarded-For` is believed (Fastify's
   * `trustProxy`), so that the client address (logs, failed-attempt limits, `_q`'s turns) is the
   * one the proxy saw. Empty (the default): no proxy is trusted and the client address is the
   * peer's.
   */
  readonly trustProxy: readonly string[];
  /**
   * `bindle-server gc` removes an unreferenced parcel only once it was stored at least this long
   * ago (at least stagingMaxAgeMs): a parcel uploaded for an invoice not created yet survives.
   */
  readonly gcGraceMs: number;
  /** The config file that was read, if any. */
  readonly configPath?: string;
  /** Where the settings start-up can fail on came from, for its error messages. */
  readonly sources: SettingSources;
}

/**
 * Where a setting came from, as validation errors name it: `--address`, `environment variable
 * BINDLE_DIRECTORY`, `config file /etc/bindle.toml key "directory"`, or `the default of --address`.
 * A path derived from the data directory (the default index, parcel store and signing keys) is
 * named by the directory's source. Optional entries are there when their setting is set.
 */
export interface SettingSources {
  readonly address: string;
  readonly metricsAddress?: string;
  readonly directory: string;
  readonly index: string;
  readonly parcels: string;
  readonly signingKeys: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  /** Where the ACL file was named: its contents are checked at start (server/auth/build-auth.ts). */
  readonly aclFile?: string;
}

/**
 * What the command line asks for: serve with a configuration, or print the help text or the
 * version and exit (the entry point knows its own version, so `version` carries no text).
 */
export type ServerInvocation =
  | { readonly kind: 'serve'; readonly config: ServerConfig }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version' };

const DEFAULT_ADDRESS = '127.0.0.1:8080';
const DEFAULT_DIRECTORY = 'bindle-data';
/** The default SQLite index file inside the data directory. */
export const INDEX_FILE = 'index.sqlite';
const DEFAULT_STRATEGY = 'GreedyVerification';
const DEFAULT_MAX_INVOICE_BYTES = 1024 * 1024;
const DEFAULT_MAX_PARCEL_BYTES = 8 * 1024 * 1024 * 1024;
const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
const DEFAULT_AUTH_MAX_FAILURES = 10;
const DEFAULT_AUTH_FAILURE_WINDOW_MS = 60_000;
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const CONFIG_PATH_ENV = 'BINDLE_CONFIG_PATH';

/** `count`: a whole number of at least 1; `list`: comma-separated (a TOML array in the config file). */
type Kind = 'string' | 'boolean' | 'size' | 'duration' | 'count' | 'list';

interface SettingSpec {
  /** Long flag name without the leading `--`; commander's attribute name is its camelCase. */
  readonly flag: string;
  readonly short?: string;
  /** Placeholder for a value-taking flag; absent for a boolean switch. */
  readonly arg?: string;
  readonly env: string;
  /** Accepted top-level keys in the config file: ours in camelCase, and the reference's names. */
  readonly fileKeys: readonly string[];
  readonly kind: Kind;
  readonly help: string;
}

/** Every setting, keyed by commander's attribute name for its flag. */
const SETTINGS = {
  address: {
    flag: 'address', short: 'i', arg: '<host:port>', env: 'BINDLE_IP_ADDRESS_PORT', fileKeys: ['address'], kind: 'string',
    help: `address and port to listen on; IPv6 in brackets, e.g. [::1]:8080 (default: ${DEFAULT_ADDRESS})`,
  },
  metricsAddress: {
    flag: 'metrics-address', arg: '<host:port>', env: 'BINDLE_METRICS_ADDRESS', fileKeys: ['metricsAddress', 'metrics_address'], kind: 'string',
    help: 'serve the Prometheus /metrics on a listener of its own at this address (no authentication), not on --address (default: on --address)',
  },
  directory: {
    flag: 'directory', short: 'd', arg: '<path>', env: 'BINDLE_DIRECTORY',
    fileKeys: ['directory', 'bindleDirectory', 'bindle_directory'], kind: 'string',
    help: `directory in which bindles are stored (default: ./${DEFAULT_DIRECTORY})`,
  },
  index: {
    flag: 'index', arg: '<spec>', env: 'BINDLE_INDEX', fileKeys: ['index'], kind: 'string',
    help: 'invoice index: sqlite:<path> or postgres://user:password@host:5432/database (default: sqlite:<directory>/index.sqlite)',
  },
  parcels: {
    flag: 'parcels', arg: '<spec>', env: 'BINDLE_PARCELS', fileKeys: ['parcels'], kind: 'string',
    help: 'parcel store: file:<directory> or s3://<bucket>[/<prefix>]?endpoint=<url>&region=<region>&forcePathStyle=true' +
      '&requestDeadline=<duration>&partMemory=<size>, credentials from AWS_* variables (default: file:<directory>)',
  },
  keyring: {
    flag: 'keyring', short: 'r', arg: '<path>', env: 'BINDLE_KEYRING',
    fileKeys: ['keyring', 'keyringPath', 'keyringFile', 'keyring_file'], kind: 'string',
    help: 'keyring of public keys trusted for verifying invoices; a named file must exist, a missing default file is an empty keyring (default: <directory>/keyring.toml)',
  },
  signingKeys: {
    flag: 'signing-keys', arg: '<path>', env: 'BINDLE_SIGNING_KEYS',
    fileKeys: ['signingKeys', 'signingKeysPath', 'signing_keys', 'signingFile', 'signing_file'], kind: 'string',
    help: 'secret keys the host signs with; created with a new host key if missing, with the SQLite index only ' +
      "(default: <directory>/signing-keys.toml; for a shared index see 'bindle-server keys create-host')",
  },
  strategy: {
    flag: 'strategy', arg: '<name>', env: 'BINDLE_VERIFICATION_STRATEGY',
    fileKeys: ['strategy', 'verificationStrategy', 'verification_strategy'], kind: 'string',
    help: 'verification strategy: CreativeIntegrity, AuthoritativeIntegrity, GreedyVerification, ExhaustiveVerification, ' +
      `MultipleAttestation[roles], MultipleAttestationGreedy[roles] (default: ${DEFAULT_STRATEGY})`,
  },
  htpasswdFile: {
    flag: 'htpasswd-file', arg: '<path>', env: 'BINDLE_HTPASSWD_FILE', fileKeys: ['htpasswdFile', 'htpasswd_file'], kind: 'string',
    help: "turn on HTTP Basic auth with this htpasswd file (bcrypt entries only; create with 'htpasswd -B')",
  },
  tokenFile: {
    flag: 'token-file', arg: '<path>', env: 'BINDLE_TOKEN_FILE', fileKeys: ['tokenFile', 'token_file'], kind: 'string',
    help: 'turn on static bearer tokens from this file: one name:sha256hex-of-token per line, # comments',
  },
  oidcIssuerUrl: {
    flag: 'oidc-issuer-url', arg: '<url>', env: 'BINDLE_OIDC_ISSUER_URL', fileKeys: ['oidcIssuerUrl', 'oidc_issuer_url'], kind: 'string',
    help: 'issuer of the OIDC tokens to accept (needs --oidc-client-id and --oidc-device-url)',
  },
  oidcClientId: {
    flag: 'oidc-client-id', arg: '<id>', env: 'BINDLE_OIDC_CLIENT_ID', fileKeys: ['oidcClientId', 'oidc_client_id'], kind: 'string',
    help: 'OIDC client id; tokens must name it as their audience',
  },
  oidcDeviceUrl: {
    flag: 'oidc-device-url', arg: '<url>', env: 'BINDLE_OIDC_DEVICE_URL', fileKeys: ['oidcDeviceUrl', 'oidc_device_url'], kind: 'string',
    help: "the OIDC provider's device-code authorization URL (for /login)",
  },
  oidcJwksFile: {
    flag: 'oidc-jwks-file', arg: '<path>', env: 'BINDLE_OIDC_JWKS_FILE', fileKeys: ['oidcJwksFile', 'oidc_jwks_file'], kind: 'string',
    help: "verify tokens with this local JWKS file instead of fetching the issuer's keys",
  },
  aclFile: {
    flag: 'acl-file', arg: '<path>', env: 'BINDLE_ACL_FILE', fileKeys: ['aclFile', 'acl_file'], kind: 'string',
    help: 'authorize writes by name with this ACL file (TOML; re-read on change and on SIGHUP). Without it, any authenticated user may push and yank any bindle',
  },
  unauthenticated: {
    flag: 'unauthenticated', env: 'BINDLE_UNAUTHENTICATED', fileKeys: ['unauthenticated'], kind: 'boolean',
    help: 'serve without authentication: anyone may read and write',
  },
  tlsCert: {
    flag: 'tls-cert', short: 'c', arg: '<path>', env: 'BINDLE_TLS_CERT',
    fileKeys: ['tlsCert', 'tls_cert', 'certPath', 'cert_path'], kind: 'string',
    help: 'TLS certificate (PEM); needs --tls-key. Without both, the server speaks plain HTTP',
  },
  tlsKey: {
    flag: 'tls-key', short: 'k', arg: '<path>', env: 'BINDLE_TLS_KEY',
    fileKeys: ['tlsKey', 'tls_key', 'keyPath', 'key_path'], kind: 'string',
    help: 'TLS private key (PEM); needs --tls-cert',
  },
  maxInvoiceSize: {
    flag: 'max-invoice-size', arg: '<size>', env: 'BINDLE_MAX_INVOICE_SIZE',
    fileKeys: ['maxInvoiceSize', 'max_invoice_size'], kind: 'size',
    help: 'largest accepted invoice body: bytes or a number with a unit, e.g. 512KiB, 10MB (default: 1MiB)',
  },
  maxParcelSize: {
    flag: 'max-parcel-size', arg: '<size>', env: 'BINDLE_MAX_PARCEL_SIZE',
    fileKeys: ['maxParcelSize', 'max_parcel_size'], kind: 'size',
    help: 'largest accepted parcel (default: 8GiB)',
  },
  logLevel: {
    flag: 'log-level', arg: '<level>', env: 'BINDLE_LOG_LEVEL', fileKeys: ['logLevel', 'log_level'], kind: 'string',
    help: `one of ${LOG_LEVELS.join(', ')} (default: info)`,
  },
  shutdownGrace: {
    flag: 'shutdown-grace', arg: '<duration>', env: 'BINDLE_SHUTDOWN_GRACE',
    fileKeys: ['shutdownGrace', 'shutdown_grace'], kind: 'duration',
    help: 'how long in-flight requests may finish after SIGTERM/SIGINT: milliseconds, or with ms/s (default: 10s)',
  },
  bodyIdleTimeout: {
    flag: 'body-idle-timeout', arg: '<duration>', env: 'BINDLE_BODY_IDLE_TIMEOUT',
    fileKeys: ['bodyIdleTimeout', 'body_idle_timeout'], kind: 'duration',
    help: 'abort a request (408) whose body sends nothing for this long; slow uploads that keep moving are never cut off (default: 30s)',
  },
  sendTimeout: {
    flag: 'send-timeout', arg: '<duration>', env: 'BINDLE_SEND_TIMEOUT',
    fileKeys: ['sendTimeout', 'send_timeout'], kind: 'duration',
    help: 'close a connection whose reply the client has taken none of for this long; slow downloads that keep moving are never cut off (default: 60s)',
  },
  stagingMaxAge: {
    flag: 'staging-max-age', arg: '<duration>', env: 'BINDLE_STAGING_MAX_AGE',
    fileKeys: ['stagingMaxAge', 'staging_max_age'], kind: 'duration',
    help: 'an upload not written to for this long counts as abandoned and its staged data is removed (at start-up and periodically; never by process id) (default: 1h)',
  },
  gcGrace: {
    flag: 'gc-grace', arg: '<duration>', env: 'BINDLE_GC_GRACE',
    fileKeys: ['gcGrace', 'gc_grace'], kind: 'duration',
    help: "'bindle-server gc' removes a parcel no invoice references only once it was stored this long ago; at least --staging-max-age (default: 1h)",
  },
  headersTimeout: {
    flag: 'headers-timeout', arg: '<duration>', env: 'BINDLE_HEADERS_TIMEOUT',
    fileKeys: ['headersTimeout', 'headers_timeout'], kind: 'duration',
    help: 'the request line and headers must arrive within this time, else 408 (default: 20s)',
  },
  maxConnections: {
    flag: 'max-connections', arg: '<count>', env: 'BINDLE_MAX_CONNECTIONS',
    fileKeys: ['maxConnections', 'max_connections'], kind: 'count',
    help: 'open connections at most; new ones beyond are closed at once, so that a flood of connections cannot use up the ' +
      'file descriptors the requests already in need (default: half the open-file limit left after 512, at most 10000)',
  },
  authMaxFailures: {
    flag: 'auth-max-failures', arg: '<count>', env: 'BINDLE_AUTH_MAX_FAILURES',
    fileKeys: ['authMaxFailures', 'auth_max_failures'], kind: 'count',
    help: `failed authentications a client address may make within --auth-failure-window before its requests with credentials get 429 (default: ${DEFAULT_AUTH_MAX_FAILURES})`,
  },
  authFailureWindow: {
    flag: 'auth-failure-window', arg: '<duration>', env: 'BINDLE_AUTH_FAILURE_WINDOW',
    fileKeys: ['authFailureWindow', 'auth_failure_window'], kind: 'duration',
    help: 'the window in which --auth-max-failures counts failures, from an address\'s first failure (default: 60s)',
  },
  trustProxy: {
    flag: 'trust-proxy', arg: '<addresses>', env: 'BINDLE_TRUST_PROXY',
    fileKeys: ['trustProxy', 'trust_proxy'], kind: 'list',
    help: 'comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For names the client ' +
      '(for logs and failed-attempt limits); a TOML array in the config file (default: none trusted)',
  },
  useEmbeddedDb: {
    flag: 'use-embedded-db', short: 'e', env: 'BINDLE_USE_EMBEDDED_DB', fileKeys: ['useEmbeddedDb', 'use_embedded_db'], kind: 'boolean',
    help: 'accepted for compatibility with the reference server; has no effect (storage is always indexed)',
  },
} as const satisfies Record<string, SettingSpec>;

type SettingName = keyof typeof SETTINGS;
const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/** One server option as a user can give it: the long flag, its short form, and its environment variable. */
export interface ServerOption {
  readonly flag: `--${string}`;
  readonly short?: `-${string}`;
  readonly env: string;
  /** True when the option takes a value (false for a switch). */
  readonly takesValue: boolean;
}

/** Every option `bindle-server` accepts besides --help and --version. */
export const SERVER_OPTIONS: readonly ServerOption[] = Object.freeze([
  { flag: '--config-path', env: CONFIG_PATH_ENV, takesValue: true },
  ...SETTING_NAMES.map((name): ServerOption => {
    const spec: SettingSpec = SETTINGS[name];
    return {
      flag: `--${spec.flag}`,
      ...(spec.short === undefined ? {} : { short: `-${spec.short}` as const }),
      env: spec.env,
      takesValue: spec.arg !== undefined,
    };
  }),
]);

/** A raw value and a description of where it came from, for error messages. */
interface Sourced {
  readonly value: string | number | boolean;
  readonly source: string;
}

const DESCRIPTION = 'The Bindle server: serves a Bindle repository (invoices and parcels) over HTTP.';

const HELP_EPILOG = `
Every option can also be set with the environment variable shown, or in a TOML config file given
with --config-path (env: ${CONFIG_PATH_ENV}). Precedence: flag, then environment, then config file,
then the default. Config file keys are the option names in camelCase (e.g. signingKeys,
htpasswdFile, maxParcelSize); the reference server's names (bindle_directory, keyring_file,
signing_file, verification_strategy, cert_path, key_path, htpasswd_file, oidc_client_id, ...)
are accepted too. Relative paths are resolved against the working directory.

Without --unauthenticated or an authenticator (--htpasswd-file, --token-file, --oidc-*), the
server only starts on a loopback address, and then serves unauthenticated.
`;

function buildCommand(): Command {
  const cmd = new Command('bindle-server')
    .description(DESCRIPTION)
    .exitOverride()
    .allowExcessArguments(false)
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: () => undefined })
    .configureHelp({ helpWidth: 100 })
    .helpOption('-h, --help', 'print this help and exit')
    .addOption(new Option('-V, --version', 'print the version and exit'))
    .addOption(new Option('--config-path <path>', `TOML config file to read (env: ${CONFIG_PATH_ENV})`));
  for (const name of SETTING_NAMES) {
    const spec: SettingSpec = SETTINGS[name];
    const flags = `${spec.short === undefined ? '' : `-${spec.short}, `}--${spec.flag}${spec.arg === undefined ? '' : ` ${spec.arg}`}`;
    cmd.addOption(new Option(flags, `${spec.help} (env: ${spec.env})`));
  }
  return cmd;
}

/** The `--help` text. */
export function serverHelp(): string {
  return buildCommand().helpInformation() + HELP_EPILOG;
}

/** 'none' when the server does no authentication; 'configured' when an authenticator is set up. */
export function authMode(config: ServerConfig): 'none' | 'configured' {
  return config.unauthenticated ? 'none' : 'configured';
}

/** How error messages name a setting's default value, e.g. `the default of --directory`. */
function defaultOf(name: SettingName): string {
  return `the default of --${SETTINGS[name].flag}`;
}

function invalid(message: string): BindleError {
  return new BindleError('invalid_config', message);
}

/**
 * Parses the command line (`argv` without the node and script paths, i.e. `process.argv.slice(2)`),
 * the environment and the config file. Returns what to do: serve with a validated config, or print
 * help or the version. Throws invalid_config for an unknown flag, a missing flag value, a bad value
 * or an unreadable config file.
 */
export async function parseServerInvocation(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<ServerInvocation> {
  const cmd = buildCommand();
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') return { kind: 'help', text: serverHelp() };
      if (err.code === 'commander.excessArguments') {
        const args = cmd.args.map((arg) => JSON.stringify(arg)).join(', ');
        throw new BindleError('invalid_config', `unexpected argument ${args}: only options are accepted here (see --help)`, { cause: err });
      }
      throw new BindleError('invalid_config', `${err.message.replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ')} (see --help)`, { cause: err });
    }
    throw err;
  }
  if (cmd.getOptionValue('version') === true) return { kind: 'version' };
  return { kind: 'serve', config: await resolveConfig(cmd, env, cwd) };
}

/**
 * Loads and validates the server configuration (see parseServerInvocation for the arguments).
 * `--help` and `--version` are not configuration: the entry point answers them through
 * parseServerInvocation, and here they are invalid_config.
 */
export async function loadServerConfig(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<ServerConfig> {
  const invocation = await parseServerInvocation(argv, env, cwd);
  if (invocation.kind !== 'serve') {
    throw invalid(`--${invocation.kind} asks for no configuration; the entry point answers it via parseServerInvocation`);
  }
  return invocation.config;
}

/** Reads the config file's top-level keys into settings; unknown and duplicate keys are errors. */
async function readConfigFile(path: string, origin: string): Promise<Map<SettingName, Sourced>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new BindleError('invalid_config', `cannot read config file ${path} (from ${origin}): ${reason}`, { cause: err });
  }
  let doc: Record<string, unknown>;
  try {
    doc = TOML.parse(text);
  } catch (err) {
    throw new BindleError('invalid_config', `config file ${path} is not valid TOML: ${syntaxErrorSummary(err)}`, { cause: err });
  }
  const byKey = new Map<string, SettingName>();
  for (const name of SETTING_NAMES) for (const key of SETTINGS[name].fileKeys) byKey.set(key, name);
  const out = new Map<SettingName, Sourced>();
  const keyOf = new Map<SettingName, string>();
  for (const [key, value] of Object.entries(doc)) {
    const name = byKey.get(key);
    if (name === undefined) {
      throw invalid(`config file ${path}: unknown key "${key}" (known keys: ${[...byKey.keys()].join(', ')})`);
    }
    const earlier = keyOf.get(name);
    if (earlier !== undefined) {
      throw invalid(`config file ${path}: "${earlier}" and "${key}" both set the same option; keep one`);
    }
    keyOf.set(name, key);
    const source = `config file ${path} key "${key}"`;
    const kind = SETTINGS[name].kind;
    const accepted = acceptFileValue(value, kind);
    if (accepted === undefined) {
      const expected = kind === 'boolean' ? 'true or false'
        : kind === 'string' ? 'a string'
        : kind === 'list' ? 'an array of strings'
        : 'a string or an integer';
      throw invalid(`${source}: expected ${expected}, got ${describeTomlValue(value)}`);
    }
    out.set(name, { value: accepted, source });
  }
  return out;
}

/** The value if its TOML type suits the setting's kind. */
function acceptFileValue(value: unknown, kind: Kind): string | number | boolean | undefined {
  if (kind === 'boolean') return typeof value === 'boolean' ? value : undefined;
  if (kind === 'list') {
    return Array.isArray(value) && value.every((item) => typeof item === 'string' && !item.includes(',')) ? value.join(',') : undefined;
  }
  if (typeof value === 'string') return value;
  if (kind !== 'string' && typeof value === 'number' && Number.isInteger(value)) return value;
  return undefined;
}

function describeTomlValue(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (value !== null && typeof value === 'object') return 'a table';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function parseEnvBoolean(text: string, source: string): boolean {
  const lower = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
  if (['0', 'false', 'no', 'off'].includes(lower)) return false;
  throw invalid(`${source}: "${text}" is not a boolean; use true or false`);
}

async function resolveConfig(cmd: Command, env: NodeJS.ProcessEnv, cwd: string): Promise<ServerConfig> {
  const configFlag = cmd.getOptionValue('configPath') as string | undefined;
  const configEnv = nonEmpty(env[CONFIG_PATH_ENV]);
  let configPath: string | undefined;
  let file = new Map<SettingName, Sourced>();
  if (configFlag !== undefined || configEnv !== undefined) {
    const origin = configFlag !== undefined ? '--config-path' : `environment variable ${CONFIG_PATH_ENV}`;
    const given = configFlag ?? configEnv ?? '';
    if (given.trim() === '') throw invalid(`${origin}: the config file path must not be empty`);
    configPath = resolve(cwd, given);
    file = await readConfigFile(configPath, origin);
  }

  /** The winning raw value of a setting: flag, then environment, then file. */
  const pick = (name: SettingName): Sourced | undefined => {
    const spec: SettingSpec = SETTINGS[name];
    const fromFlag: unknown = cmd.getOptionValue(name);
    if (typeof fromFlag === 'string' || typeof fromFlag === 'boolean') return { value: fromFlag, source: `--${spec.flag}` };
    const fromEnv = nonEmpty(env[spec.env]);
    if (fromEnv !== undefined) {
      const source = `environment variable ${spec.env}`;
      return { value: spec.kind === 'boolean' ? parseEnvBoolean(fromEnv, source) : fromEnv, source };
    }
    return file.get(name);
  };
  const pickString = (name: SettingName): { value: string; source: string } | undefined => {
    const got = pick(name);
    if (got === undefined) return undefined;
    if (typeof got.value !== 'string') throw invalid(`${got.source}: expected a string`);
    if (got.value.trim() === '') throw invalid(`${got.source}: must not be empty`);
    return { value: got.value, source: got.source };
  };
  const pickPath = (name: SettingName): string | undefined => {
    const got = pickString(name);
    return got === undefined ? undefined : resolve(cwd, got.value);
  };

  const addressRaw = pickString('address') ?? { value: DEFAULT_ADDRESS, source: defaultOf('address') };
  const address = parseAddress(addressRaw.value, addressRaw.source);
  const metricsRaw = pickString('metricsAddress');
  const metricsAddress = metricsRaw === undefined ? undefined : parseAddress(metricsRaw.value, metricsRaw.source);
  if (metricsRaw !== undefined && metricsAddress !== undefined && sameListener(address, metricsAddress)) {
    throw invalid(
      `${metricsRaw.source} (${metricsRaw.value}) conflicts with ${addressRaw.source} (${addressRaw.value}): ` +
        'the metrics listener needs an address of its own; give it another port, or drop it to serve /metrics on the main address',
    );
  }

  const directoryRaw = pickString('directory');
  const directorySource = directoryRaw?.source ?? defaultOf('directory');
  const directory = resolve(cwd, directoryRaw?.value ?? DEFAULT_DIRECTORY);
  const indexRaw = pickString('index');
  const index = indexRaw === undefined
    ? { kind: 'sqlite' as const, path: resolve(directory, INDEX_FILE) }
    : parseIndexSpec(indexRaw.value, indexRaw.source, cwd);
  const parcelsRaw = pickString('parcels');
  const parcels = parcelsRaw === undefined
    ? { kind: 'file' as const, directory }
    : parseParcelsSpec(parcelsRaw.value, parcelsRaw.source, cwd, env);
  const keyringGiven = pickString('keyring');
  const keyringPath = keyringGiven === undefined ? resolve(directory, 'keyring.toml') : resolve(cwd, keyringGiven.value);
  const signingKeysRaw = pickString('signingKeys');
  const signingKeysPath = signingKeysRaw === undefined ? resolve(directory, 'signing-keys.toml') : resolve(cwd, signingKeysRaw.value);

  const strategyRaw = pickString('strategy');
  const strategy = strategyRaw?.value.trim() ?? DEFAULT_STRATEGY;
  if (strategyRaw !== undefined) {
    try {
      parseStrategy(strategy);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new BindleError('invalid_config', `${strategyRaw.source}: ${reason}`, { cause: err });
    }
  }

  const htpasswdFile = pickPath('htpasswdFile');
  const tokenFile = pickPath('tokenFile');
  const oidc = resolveOidc(pickString, pickPath);
  const tls = resolveTls(pickString, cwd);

  const maxInvoiceBytes = pickSize(pick('maxInvoiceSize'), DEFAULT_MAX_INVOICE_BYTES);
  const maxParcelBytes = pickSize(pick('maxParcelSize'), DEFAULT_MAX_PARCEL_BYTES);
  const shutdownGraceMs = pickDuration(pick('shutdownGrace'), DEFAULT_SHUTDOWN_GRACE_MS);
  const bodyIdleTimeoutMs = pickPositiveDuration(pick('bodyIdleTimeout'), DEFAULT_BODY_IDLE_TIMEOUT_MS);
  const sendTimeoutMs = pickPositiveDuration(pick('sendTimeout'), DEFAULT_SEND_TIMEOUT_MS);
  const headersTimeoutMs = pickPositiveDuration(pick('headersTimeout'), DEFAULT_HEADERS_TIMEOUT_MS);
  const stagingMaxAgeMs = pickPositiveDuration(pick('stagingMaxAge'), DEFAULT_STAGING_MAX_AGE_MS);
  const maxConnections = pickOptionalCount(pick('maxConnections')) ?? defaultMaxConnections(openFileLimit());
  const authFailureLimit = {
    maxFailures: pickCount(pick('authMaxFailures'), DEFAULT_AUTH_MAX_FAILURES),
    windowMs: pickPositiveDuration(pick('authFailureWindow'), DEFAULT_AUTH_FAILURE_WINDOW_MS),
  };
  const trustProxy = pickAddressRanges(pick('trustProxy'));
  const gcGraceRaw = pick('gcGrace');
  const gcGraceMs = pickPositiveDuration(gcGraceRaw, Math.max(DEFAULT_GC_GRACE_MS, stagingMaxAgeMs));
  if (gcGraceRaw !== undefined && gcGraceMs < stagingMaxAgeMs) {
    // Only gc uses the grace; checked here too, so that servers and gc can share one configuration.
    const stagingSource = pick('stagingMaxAge')?.source ?? defaultOf('stagingMaxAge');
    throw invalid(
      `${gcGraceRaw.source} (${gcGraceMs} ms) is shorter than ${stagingSource} (${stagingMaxAgeMs} ms): ` +
        'bindle-server gc would remove the parcels of uploads still under way; ' +
        `raise --${SETTINGS.gcGrace.flag} to at least ${stagingMaxAgeMs} ms or lower --${SETTINGS.stagingMaxAge.flag}`,
    );
  }

  const levelRaw = pickString('logLevel');
  let logLevel: LogLevel = 'info';
  if (levelRaw !== undefined) {
    const level = LOG_LEVELS.find((l) => l === levelRaw.value.trim().toLowerCase());
    if (level === undefined) throw invalid(`${levelRaw.source}: "${levelRaw.value}" is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
    logLevel = level;
  }

  // --use-embedded-db is accepted (and its environment value checked) but has no effect.
  pick('useEmbeddedDb');

  const unauthRaw = pick('unauthenticated');
  const askedUnauthenticated = unauthRaw?.value === true;
  const authSource =
    htpasswdFile !== undefined ? pick('htpasswdFile')
    : tokenFile !== undefined ? pick('tokenFile')
    : oidc !== undefined ? pick('oidcIssuerUrl')
    : undefined;
  let unauthenticated = askedUnauthenticated;
  let implicitUnauthenticated = false;
  const aclFile = pickPath('aclFile');
  if (aclFile !== undefined && authSource === undefined) {
    throw invalid(
      `${pick('aclFile')?.source ?? '--acl-file'} needs authentication (--htpasswd-file, --token-file or --oidc-*): ` +
        'without it there are no principals to grant anything to',
    );
  }
  if (authSource !== undefined && askedUnauthenticated) {
    throw invalid(
      `${unauthRaw?.source ?? '--unauthenticated'} conflicts with ${authSource.source}: ` +
        'serving unauthenticated disables authentication; drop one of them',
    );
  }
  if (authSource === undefined && !askedUnauthenticated) {
    if (!isLoopback(address.host)) {
      throw invalid(
        `no authentication is configured and ${addressRaw.source} (${addressRaw.value}) is not a loopback address: ` +
          'pass --unauthenticated to serve without authentication, or configure --htpasswd-file, --token-file or --oidc-issuer-url/--oidc-client-id/--oidc-device-url',
      );
    }
    unauthenticated = true;
    implicitUnauthenticated = true;
  }

  const config: ServerConfig = {
    address: Object.freeze(address),
    ...(metricsAddress === undefined ? {} : { metricsAddress: Object.freeze(metricsAddress) }),
    directory,
    index: Object.freeze(index),
    parcels: Object.freeze(parcels),
    keyringPath,
    ...(keyringGiven === undefined ? {} : { keyringSource: keyringGiven.source }),
    signingKeysPath,
    strategy,
    ...(htpasswdFile === undefined ? {} : { htpasswdFile }),
    ...(tokenFile === undefined ? {} : { tokenFile }),
    ...(oidc === undefined ? {} : { oidc: Object.freeze(oidc) }),
    ...(aclFile === undefined ? {} : { aclFile }),
    unauthenticated,
    implicitUnauthenticated,
    ...(tls === undefined ? {} : { tls: Object.freeze({ certPath: tls.certPath, keyPath: tls.keyPath }) }),
    maxInvoiceBytes,
    maxParcelBytes,
    logLevel,
    shutdownGraceMs,
    bodyIdleTimeoutMs,
    sendTimeoutMs,
    stagingMaxAgeMs,
    headersTimeoutMs,
    maxConnections,
    authFailureLimit: Object.freeze(authFailureLimit),
    trustProxy: Object.freeze(trustProxy),
    gcGraceMs,
    ...(configPath === undefined ? {} : { configPath }),
    sources: Object.freeze({
      address: addressRaw.source,
      ...(metricsRaw === undefined ? {} : { metricsAddress: metricsRaw.source }),
      directory: directorySource,
      index: indexRaw?.source ?? directorySource,
      parcels: parcelsRaw?.source ?? directorySource,
      signingKeys: signingKeysRaw?.source ?? directorySource,
      ...(tls === undefined ? {} : { tlsCert: tls.certSource, tlsKey: tls.keySource }),
      ...(aclFile === undefined ? {} : { aclFile: pick('aclFile')?.source ?? `--${SETTINGS.aclFile.flag}` }),
    }),
  };
  return Object.freeze(config);
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === undefined || text === '' ? undefined : text;
}

type PickString = (name: SettingName) => { value: string; source: string } | undefined;

function resolveOidc(
  pickString: PickString,
  pickPath: (name: SettingName) => string | undefined,
): ServerConfig['oidc'] {
  const issuer = pickString('oidcIssuerUrl');
  const client = pickString('oidcClientId');
  const device = pickString('oidcDeviceUrl');
  const jwksFile = pickPath('oidcJwksFile');
  if (issuer === undefined && client === undefined && device === undefined) {
    if (jwksFile !== undefined) {
      throw invalid(`--${SETTINGS.oidcJwksFile.flag} is set but OIDC is not: it needs --oidc-issuer-url, --oidc-client-id and --oidc-device-url`);
    }
    return undefined;
  }
  if (issuer === undefined || client === undefined || device === undefined) {
    const parts = [
      { raw: issuer, spec: SETTINGS.oidcIssuerUrl },
      { raw: client, spec: SETTINGS.oidcClientId },
      { raw: device, spec: SETTINGS.oidcDeviceUrl },
    ];
    const given = parts.flatMap((p) => (p.raw === undefined ? [] : [p.raw.source]));
    const missing = parts.flatMap((p) => (p.raw === undefined ? [`--${p.spec.flag} (${p.spec.env})`] : []));
    throw invalid(
      `OIDC needs all of --oidc-issuer-url, --oidc-client-id and --oidc-device-url; given ${given.join(', ')}, missing ${missing.join(' and ')}`,
    );
  }
  return {
    issuerUrl: checkHttpUrl(issuer.value.trim(), issuer.source),
    clientId: client.value.trim(),
    deviceUrl: checkHttpUrl(device.value.trim(), device.source),
    ...(jwksFile === undefined ? {} : { jwksFile }),
  };
}

function checkHttpUrl(text: string, source: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`${source}: "${text}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(`${source}: "${text}" must be an http or https URL`);
  return text;
}

/** The TLS files and where each was given. */
interface TlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  readonly certSource: string;
  readonly keySource: string;
}

function resolveTls(pickString: PickString, cwd: string): TlsFiles | undefined {
  const cert = pickString('tlsCert');
  const key = pickString('tlsKey');
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    const [given, missing] = cert === undefined ? [key, SETTINGS.tlsCert] : [cert, SETTINGS.tlsKey];
    throw invalid(`${given?.source ?? ''} is set but --${missing.flag} (${missing.env}) is not; TLS needs both a certificate and a key`);
  }
  return { certPath: resolve(cwd, cert.value), keyPath: resolve(cwd, key.value), certSource: cert.source, keySource: key.source };
}

function pickSize(raw: Sourced | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const bytes = typeof raw.value === 'number' ? raw.value : typeof raw.value === 'string' ? parseByteSize(raw.value) : undefined;
  if (bytes === undefined) throw invalid(`${raw.source}: "${String(raw.value)}" is not a size; ${SIZE_RULE}`);
  if (bytes > MAX_BYTE_SIZE) throw invalid(`${raw.source}: "${String(raw.value)}" is larger than the maximum of ${MAX_BYTE_SIZE} bytes`);
  if (bytes < 1) throw invalid(`${raw.source}: a size limit must be at least 1 byte`);
  return bytes;
}

function pickDuration(raw: Sourced | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw.value);
  if (ms === undefined) throw invalid(`${raw.source}: "${String(raw.value)}" is not a duration; ${DURATION_RULE}`);
  if (ms > MAX_DURATION_MS) throw invalid(`${raw.source}: ${ms} ms is longer than the maximum of ${MAX_DURATION_MS} ms`);
  return ms;
}

/** A duration that must not be 0 (a timeout of nothing would refuse every request). */
function pickPositiveDuration(raw: Sourced | undefined, fallback: number): number {
  const ms = pickDuration(raw, fallback);
  if (ms === 0) throw invalid(`${raw?.source ?? 'the default'}: a timeout must be longer than 0 ms`);
  return ms;
}

/** A whole number of at least 1. */
function pickCount(raw: Sourced | undefined, fallback: number): number {
  return pickOptionalCount(raw) ?? fallback;
}

/** A whole number of at least 1; undefined when not given. */
function pickOptionalCount(raw: Sourced | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw.value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw invalid(`${raw.source}: "${String(raw.value)}" is not a whole number of at least 1`);
  return n;
}

/** A comma-separated list of IP addresses and CIDR ranges (`10.0.0.0/8`, `fd00::/8`); empty when not given. */
function pickAddressRanges(raw: Sourced | undefined): string[] {
  if (raw === undefined) return [];
  const entries = String(raw.value).split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    if (entry === '') throw invalid(`${raw.source}: an empty entry in "${String(raw.value)}"; list addresses or CIDR ranges separated by commas`);
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    const maxPrefix = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
    if (family === 0 || !prefixOk || rest.length > 0) {
      throw invalid(`${raw.source}: "${entry}" is not an IP address or a CIDR range (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)`);
    }
  }
  return entries;
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Parses `host:port` or `[ipv6]:port`; the port may be 0 (any free port). */
export function parseAddress(text: string, source: string): { host: string; port: number } {
  const trimmed = text.trim();
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(trimmed);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (isIP(host) !== 6) throw invalid(`${source}: "${host}" in brackets is not an IPv6 address`);
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon < 0) throw invalid(`${source}: "${text}" has no port; use host:port, e.g. ${DEFAULT_ADDRESS}`);
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (host.includes(':')) throw invalid(`${source}: "${text}": write an IPv6 address in brackets, e.g. [::1]:8080`);
    if (host === '') throw invalid(`${source}: "${text}" has no host; use e.g. 0.0.0.0:8080 to listen on every interface`);
    if (isIP(host) !== 4 && (/^[\d.]+$/.test(host) || !HOSTNAME.test(host))) {
      throw invalid(`${source}: "${host}" is neither an IP address nor a host name`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw invalid(`${source}: "${portText}" is not a port number (0-65535)`);
  }
  return { host, port: Number(portText) };
}

/**
 * True when listening on `a` would take the port of `b`: the same port (not 0, which picks a free
 * one) on the same host, or on a wildcard address that covers the other (`0.0.0.0` every IPv4
 * address, `::` every address). Host names that resolve to the same address are not caught here;
 * the second listener then fails to start.
 */
function sameListener(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  if (a.port !== b.port || a.port === 0) return false;
  const covers = (wide: string, other: string): boolean => wide === '::' || (wide === '0.0.0.0' && isIP(other) !== 6);
  return a.host.toLowerCase() === b.host.toLowerCase() || covers(a.host, b.host) || covers(b.host, a.host);
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`. */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return LOOPBACK.check(host, 'ipv4');
  if (family === 6) return LOOPBACK.check(host, 'ipv6');
  return false;
}
