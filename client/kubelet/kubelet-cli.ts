/**
 * The `bindle-kubelet` command line: the daemon (`--pod-manifest-path`: run static pods) and
 * `run <ref>` (one module in the foreground, its exit code becomes ours). Options take the
 * same environment variables as the `bindle` CLI (BINDLE_URL, BINDLE_KEYRING,
 * BINDLE_DIRECTORY for the module cache, BINDLE_HTTP_USER / BINDLE_HTTP_PASSWORD,
 * BINDLE_TOKEN_FILE, BINDLE_TIMEOUT, BINDLE_VERIFICATION_STRATEGY) plus BINDLE_KUBELET_* for
 * the daemon's own settings, and for OCI registries `--insecure-registry` and
 * `--registry-auth-file` (REGISTRY_AUTH_FILE, as skopeo and podman). Both modes pick the module runtime here (the sandbox and cgroups
 * of this machine, runner.ts `detectModuleRuntime`). On SIGTERM or SIGINT the client's
 * connections are destroyed once the pods have stopped, so a fetch the kubelet abandoned ends at
 * once; `run` interrupted before its module started exits 128 + the signal's number.
 */
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Agent } from 'undici';
import { isBindleError } from '../../core/errors/bindle-error.js';
import { parseFeatureFilter, type FeatureFilter } from '../../core/selection/index.js';
import { Keyring } from '../../core/signing/keyring.js';
import { formatStrategy, parseStrategy, type VerificationStrategy } from '../../core/signing/verification.js';
import { VERSION } from '../../core/version.js';
import { integerIn } from '../cli/command-kit.js';
import { baseDirectories } from '../cli/default-paths.js';
import { tokenFromFile } from '../cli/settings.js';
import { DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS } from '../lib/bindle-client.js';
import { BindleClient, type Credentials } from '../lib/index.js';
import { Kubelet } from './kubelet.js';
import { isMovingRef, parseModuleRef } from './module-ref.js';
import { ModuleStore, type ModuleRequest, type PullPolicy } from './module-store.js';
import { loadRegistryAccess } from './registry-access.js';
import { DEFAULT_PIDS_LIMIT, detectModuleRuntime, runModuleOnce } from './runner.js';

/** The kubelet's default verification strategy: a known creator must have signed what it runs. */
export const DEFAULT_KUBELET_STRATEGY = 'CreativeIntegrity';

/** Exit code of `run` when the module could not be resolved, verified or started (as `docker run`). */
export const EXIT_RUN_FAILED = 125;

/** Where the command writes and what it reads; the real process in production. */
export interface KubeletIo {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Diagnostics (the daemon's log, `run`'s errors). */
  stderr: (text: string) => void;
  /** File descriptors a `run` module uses. */
  fds: { stdin: number; stdout: number; stderr: number };
  /** Registers a handler for SIGTERM and SIGINT. */
  onSignal: (handler: (signal: string) => void) => void;
}

interface CommonValues {
  server: string;
  keyring?: string;
  cacheDir?: string;
  httpUser?: string;
  httpPassword?: string;
  tokenFile?: string;
  timeout?: number;
  strategy: string;
  podMaxPids: number;
  insecureRegistry?: string[];
  registryAuthFile?: string;
}

interface DaemonValues extends CommonValues {
  podManifestPath?: string;
  stateDir?: string;
  pollInterval: number;
  backoffBase: number;
  backoffCap: number;
  maxRestarts?: number;
  shutdownGrace: number;
}

interface RunValues {
  pullPolicy?: PullPolicy;
  group?: string[];
  feature?: FeatureFilter[];
  choose?: string[];
  module?: string;
  allowYanked?: boolean;
  allowUnsigned?: boolean;
  env?: string[];
  verbose?: boolean;
}

function wholeNumber(value: string): number {
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function collect<T>(parse: (v: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)];
}

function featureArg(value: string): FeatureFilter {
  try {
    return parseFeatureFilter(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

/**
 * A module's exit code as this process's: 0 to 255 as they are; any other (a WASI exit code past
 * 255, which the OS would cut to its low 8 bits, so that 256 would read as success) is 1.
 */
export function processExitCode(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1;
}

/** Runs the command line `argv` (without node and script); resolves with the exit code. */
export async function kubeletMain(argv: readonly string[], io: KubeletIo): Promise<number> {
  const base = baseDirectories(io.env);
  let exitCode = 0;
  const program = new Command('bindle-kubelet')
    .description('Runs WebAssembly modules from bindles: static pods from a manifest directory, or one module with `run`.')
    .version(VERSION)
    .addOption(new Option('-s, --server <url>', 'the Bindle server API root').env('BINDLE_URL').default('http://localhost:8080/v1/'))
    .addOption(new Option('-r, --keyring <path>', `trusted keys (default ${join(base.config, 'bindle', 'keyring.toml')})`).env('BINDLE_KEYRING'))
    .addOption(new Option('-d, --cache-dir <path>', `the module cache (default ${join(base.cache, 'bindle-kubelet')})`).env('BINDLE_DIRECTORY'))
    .addOption(new Option('--http-user <user>', 'HTTP Basic user').env('BINDLE_HTTP_USER'))
    .addOption(new Option('--http-password <password>', 'HTTP Basic password').env('BINDLE_HTTP_PASSWORD'))
    .addOption(new Option('-t, --token-file <file>', 'a bearer token file (a bare token, or TOML with id_token, access_token or token)').env('BINDLE_TOKEN_FILE'))
    .addOption(new Option('--timeout <seconds>', 'give up on a stalled connection or transfer after this long (default: 30)').env('BINDLE_TIMEOUT').argParser(integerIn(1, 86_400)))
    .addOption(new Option('--strategy <name>', 'invoice verification strategy').env('BINDLE_VERIFICATION_STRATEGY').default(DEFAULT_KUBELET_STRATEGY))
    .addOption(
      new Option('--insecure-registry <host:port>', 'an OCI registry spoken to over plain HTTP (repeatable; comma-separated in the variable)')
        .env('BINDLE_KUBELET_INSECURE_REGISTRIES')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')]),
    )
    .addOption(new Option('--registry-auth-file <file>', 'credentials for OCI registries: {"auths": {"<registry>": {"auth": "<base64 user:password>"}}} (what skopeo login writes)').env('REGISTRY_AUTH_FILE'))
    .addOption(new Option('--pod-manifest-path <dir>', 'directory of static Pod manifests to run (YAML or JSON)').env('BINDLE_KUBELET_POD_MANIFEST_PATH'))
    .addOption(new Option('--state-dir <dir>', `pod logs and status (default ${join(base.data, 'bindle-kubelet')})`).env('BINDLE_KUBELET_STATE_DIR'))
    .addOption(new Option('--poll-interval <ms>', 'how often the manifest directory is read').argParser(wholeNumber).default(1000))
    .addOption(new Option('--backoff-base <ms>', 'first restart delay; doubles per consecutive restart').argParser(wholeNumber).default(10_000))
    .addOption(new Option('--backoff-cap <ms>', 'largest restart delay').argParser(wholeNumber).default(300_000))
    .addOption(new Option('--max-restarts <n>', 'restarts per container before giving up (default: no limit)').argParser(wholeNumber))
    .addOption(new Option('--pod-max-pids <n>', 'processes and threads per container (cgroup pids limit)').env('BINDLE_KUBELET_POD_MAX_PIDS').argParser(integerIn(16, 1_000_000)).default(DEFAULT_PIDS_LIMIT))
    .addOption(new Option('--shutdown-grace <ms>', 'on SIGTERM, how long running modules may take to end before they are killed').argParser(wholeNumber).default(5000))
    .exitOverride()
    .configureOutput({
      writeErr: (text) => io.stderr(text),
      writeOut: (text) => process.stdout.write(text),
      // As `bindle`: help wraps at the terminal's width (80 columns when not a terminal), and a
      // usage error is one line pointing to the help.
      getOutHelpWidth: () => (process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : 80),
      getErrHelpWidth: () => 80,
      outputError: (text, write) => write(`bindle-kubelet: ${text.replace(/^error: /, '').trimEnd()} (see 'bindle-kubelet --help')\n`),
    })
    .action(async (_opts: unknown, command: Command) => {
      exitCode = await runDaemon(command.opts<DaemonValues>(), io);
    });

  program
    .command('run')
    .description('Runs one module in the foreground: its stdout and stderr are ours, and so is its exit code. Module arguments that start with "-" go after "--".')
    .argument('<ref>', 'bindle:<name>/<version>, bindle:<name>@<semver range>, or an OCI image <registry>/<repository>[:<tag>|@<digest>]')
    .argument('[args...]', 'arguments for the module')
    .addOption(new Option('--pull-policy <policy>', 'Always, IfNotPresent or Never (default: Always for a range, else IfNotPresent)').choices(['Always', 'IfNotPresent', 'Never']))
    .option('-g, --group <name>', 'select a group besides the required ones (repeatable)', collect(String))
    .option('-F, --feature <section.name=value>', 'feature filter (repeatable)', collect(featureArg))
    .option('--choose <group=parcel>', 'the member of a oneOf group to use (repeatable)', collect(String))
    .option('-m, --module <name>', 'label name of the entry module')
    .option('--allow-yanked', 'run a yanked bindle')
    .option('--allow-unsigned', 'run an OCI image that is a plain Wasm module, not a signed bindle (nothing verifies it)')
    .option('-e, --env <NAME=VALUE>', 'environment variable for the module (repeatable)', collect(String))
    .option('-v, --verbose', 'report resolution and fetching on stderr')
    .action(async (ref: string, args: string[], opts: RunValues, command: Command) => {
      exitCode = await runOnce(ref, args, opts, command.optsWithGlobals<CommonValues>(), io);
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: unknown }).exitCode;
    if (typeof code === 'number') return code === 0 ? 0 : 2;
    throw err;
  }
  return exitCode;
}

/** What both modes need: a verifying client and a module store. */
interface OpenedStore {
  client: BindleClient;
  store: ModuleStore;
  /** The client's connection pool, ours so that `closeStore` can end requests still under way. */
  agent: Agent;
}

/**
 * Closes the client and destroys its connection pool: a request still under way (a fetch the
 * kubelet abandoned on a signal, perhaps waiting on a silent server) fails at once instead of
 * holding the process until its timeout and retries run out.
 */
async function closeStore(opened: OpenedStore): Promise<void> {
  await opened.client.close();
  await opened.agent.destroy();
}

/** The exit code of a process ended by `signal` (128 + its number: 130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(signal: string): number {
  const number = (constants.signals as Readonly<Record<string, number | undefined>>)[signal];
  return 128 + (number ?? 15);
}

async function openStore(values: CommonValues, io: KubeletIo, log: (message: string) => void): Promise<OpenedStore> {
  const base = baseDirectories(io.env);
  const strategy: VerificationStrategy = parseStrategy(values.strategy);
  const keyringPath = resolve(io.cwd, values.keyring ?? join(base.config, 'bindle', 'keyring.toml'));
  let keyring: Keyring;
  try {
    keyring = await Keyring.load(keyringPath);
  } catch (err) {
    throw new Error(
      `cannot load the keyring ${keyringPath} (--keyring / BINDLE_KEYRING): every invoice is verified against it: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const credentials = await clientCredentials(values, io);
  const timeoutMs = values.timeout !== undefined ? values.timeout * 1000 : DEFAULT_TIMEOUT_MS;
  // The pool the client would make itself (same timeouts and connection cap), made here to be destroyable.
  const agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connections: DEFAULT_CONCURRENCY });
  const client = new BindleClient({
    baseUrl: values.server,
    keyring,
    strategy,
    ...(credentials !== undefined ? { credentials } : {}),
    timeoutMs,
    dispatcher: agent,
    userAgent: `bindle-kubelet/${VERSION}`,
  });
  const cacheDir = resolve(io.cwd, values.cacheDir ?? join(base.cache, 'bindle-kubelet'));
  log(`server ${client.baseUrl}, keyring ${keyringPath} (${keyring.size} key${keyring.size === 1 ? '' : 's'}), strategy ${formatStrategy(strategy)}, module cache ${cacheDir}`);
  const registries = await loadRegistryAccess({
    insecure: values.insecureRegistry ?? [],
    authFile: values.registryAuthFile === undefined || values.registryAuthFile === '' ? undefined : resolve(io.cwd, values.registryAuthFile),
    timeoutMs: values.timeout !== undefined ? values.timeout * 1000 : undefined,
  });
  return { client, agent, store: new ModuleStore({ client, cacheDir, log, registries }) };
}

/** HTTP Basic (`--http-user` and `--http-password`) or a bearer token (`--token-file`), not both. */
async function clientCredentials(values: CommonValues, io: KubeletIo): Promise<Credentials | undefined> {
  const user = values.httpUser === '' ? undefined : values.httpUser;
  const password = values.httpPassword;
  const tokenFile = values.tokenFile === '' ? undefined : values.tokenFile;
  if (tokenFile !== undefined) {
    if (user !== undefined || password !== undefined) throw new Error('give either HTTP Basic credentials (--http-user, --http-password) or --token-file, not both');
    const path = resolve(io.cwd, tokenFile);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the token file ${path} (--token-file / BINDLE_TOKEN_FILE): ${err instanceof Error ? err.message : String(err)}`);
    }
    return { kind: 'bearer', token: tokenFromFile(path, text) };
  }
  if (user === undefined && password === undefined) return undefined;
  if (user === undefined || password === undefined) {
    throw new Error('HTTP Basic credentials need both --http-user (BINDLE_HTTP_USER) and --http-password (BINDLE_HTTP_PASSWORD)');
  }
  return { kind: 'basic', user, password };
}

function describeError(err: unknown): string {
  if (isBindleError(err)) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

async function runDaemon(values: DaemonValues, io: KubeletIo): Promise<number> {
  const log = (message: string): void => io.stderr(`${new Date().toISOString()} ${message}\n`);
  if (values.podManifestPath === undefined || values.podManifestPath === '') {
    io.stderr('bindle-kubelet: give --pod-manifest-path <dir> (or BINDLE_KUBELET_POD_MANIFEST_PATH) to run static pods, or use `bindle-kubelet run <ref>`\n');
    return 2;
  }
  let opened: OpenedStore;
  try {
    opened = await openStore(values, io, log);
  } catch (err) {
    io.stderr(`bindle-kubelet: ${describeError(err)}\n`);
    return 2;
  }
  const base = baseDirectories(io.env);
  const kubelet = new Kubelet({
    store: opened.store,
    runtime: await detectModuleRuntime({ log, pidsLimit: values.podMaxPids }),
    manifestDir: resolve(io.cwd, values.podManifestPath),
    stateDir: resolve(io.cwd, values.stateDir ?? join(base.data, 'bindle-kubelet')),
    pollIntervalMs: Math.max(1, values.pollInterval),
    backoff: {
      baseMs: values.backoffBase,
      capMs: Math.max(values.backoffBase, values.backoffCap),
      ...(values.maxRestarts !== undefined ? { maxRestarts: values.maxRestarts } : {}),
    },
    log,
  });
  const stopped = new Promise<void>((resolveStop) => {
    let stopping = false;
    io.onSignal((signal) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: stopping every pod (grace ${values.shutdownGrace} ms)`);
      void kubelet
        .stop(values.shutdownGrace)
        .then(() => closeStore(opened))
        .finally(() => resolveStop());
    });
  });
  try {
    await kubelet.start();
  } catch (err) {
    io.stderr(`bindle-kubelet: cannot start: ${describeError(err)}\n`);
    await kubelet.stop();
    await closeStore(opened);
    return 2;
  }
  await stopped;
  log('stopped');
  return 0;
}

async function runOnce(ref: string, args: string[], opts: RunValues, values: CommonValues, io: KubeletIo): Promise<number> {
  const log = opts.verbose === true ? (message: string) => io.stderr(`bindle-kubelet: ${message}\n`) : () => undefined;
  let opened: OpenedStore | undefined;
  let signalled: string | undefined;
  try {
    const env: Record<string, string> = {};
    for (const item of opts.env ?? []) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new Error(`--env ${JSON.stringify(item)}: expected NAME=VALUE`);
      env[item.slice(0, eq)] = item.slice(eq + 1);
    }
    const choices: Record<string, string> = {};
    for (const item of opts.choose ?? []) {
      const eq = item.indexOf('=');
      if (eq <= 0 || eq === item.length - 1) throw new Error(`--choose ${JSON.stringify(item)}: expected group=parcel-name`);
      choices[item.slice(0, eq)] = item.slice(eq + 1);
    }
    const parsed = parseModuleRef(ref);
    const request: ModuleRequest = {
      allowYanked: opts.allowYanked === true,
      allowUnsigned: opts.allowUnsigned === true,
      ...(opts.group !== undefined ? { groups: opts.group } : {}),
      ...(opts.feature !== undefined ? { features: opts.feature } : {}),
      ...(Object.keys(choices).length > 0 ? { choices } : {}),
      ...(opts.module !== undefined ? { module: opts.module } : {}),
    };
    opened = await openStore(values, io, log);
    const abort = new AbortController();
    io.onSignal((signal) => {
      signalled ??= signal;
      abort.abort();
    });
    const exit = await runModuleOnce(opened.store, {
      runtime: await detectModuleRuntime({ log, pidsLimit: values.podMaxPids }),
      ref,
      pullPolicy: opts.pullPolicy ?? (isMovingRef(parsed) ? 'Always' : 'IfNotPresent'),
      request,
      args,
      env,
      ...io.fds,
      signal: abort.signal,
    });
    if (exit.reason !== 'Completed' && exit.reason !== 'Error') io.stderr(`bindle-kubelet: ${exit.reason}: ${exit.message ?? ''}\n`);
    return processExitCode(exit.exitCode);
  } catch (err) {
    if (signalled !== undefined) {
      io.stderr(`bindle-kubelet: ${signalled} while resolving ${ref}: stopped before the module started\n`);
      return signalExitCode(signalled);
    }
    const hint = isBindleError(err, 'yanked') ? ' (pass --allow-yanked to run it anyway)' : '';
    io.stderr(`bindle-kubelet: ${describeError(err)}${hint}\n`);
    return EXIT_RUN_FAILED;
  } finally {
    if (opened !== undefined) await closeStore(opened);
  }
}
