/**
 * Assembles a running server from a validated ServerConfig: opens the log destination
 * (server/log-destination.ts: stdout, bounded, never stalling the server) and sends Node's
 * process warnings there while the server is open (server/process-warnings.ts), the configured storage
 * backends (server/storage/backends.ts), the host identity (creating the host key only for the
 * embedded single-node default), the trusted keyring (reloaded on change and on demand), builds
 * the auth seams and the app, wraps the seams in their metrics decorators (server/metrics/),
 * listens (and on `--metrics-address`, serves the metrics there), and closes everything in
 * order, the log's last lines waited for at most LOG_DRAIN_MS. What the environment makes fail
 * on the way (an unusable data directory, TLS file, index or address) is a StartupError naming the
 * setting and where it was given. Used by the entry point and by end-to-end tests.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { constants, unwatchFile, watchFile } from 'node:fs';
import { access, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { BindleError, isBindleError } from '../core/errors/bindle-error.js';
import { FileTrustStore, type TrustReload } from '../core/signing/file-trust-store.js';
import { TrustStoreVerifier } from '../core/signing/trust-store.js';
import { parseStrategy, formatStrategy } from '../core/signing/verification.js';
import { VERSION } from '../core/version.js';
import { buildApp } from './app.js';
import type { AclAuthorizer } from './auth/acl-authorizer.js';
import { buildAuth } from './auth/build-auth.js';
import { describeIndex, describeParcels } from './config/backend-specs.js';
import type { ServerConfig } from './config/server-config.js';
import { loadHostIdentity } from './host-identity.js';
import { openLogDestination, type LogDestination } from './log-destination.js';
import { logProcessWarnings } from './process-warnings.js';
import { BindleService } from './service/bindle-service.js';
import { isSharedIndex, openInvoiceIndex, openParcelStore } from './storage/backends.js';
import { PART_SPOOL_DIRECTORY } from './storage/part-spool.js';
import { InstrumentedAuthenticator, InstrumentedAuthorizer, InstrumentedVerifier } from './metrics/instrumented-checks.js';
import { InstrumentedInvoiceIndex } from './metrics/instrumented-invoice-index.js';
import { InstrumentedParcelStore } from './metrics/instrumented-parcel-store.js';
import { buildMetricsApp } from './metrics/metrics-app.js';
import { ServerMetrics } from './metrics/server-metrics.js';
import { storageChecks, type ServerState } from './service/readiness.js';

export { INDEX_FILE } from './config/server-config.js';

/** How long a closing server waits for its last log lines to be written (a stopped reader would hold the exit forever). */
const LOG_DRAIN_MS = 2000;

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly log: FastifyBaseLogger;
  /**
   * Starts listening; resolves with the bound address (e.g. http://127.0.0.1:8080). An address
   * in use, not on this host, not resolving or not permitted is a StartupError.
   */
  listen(): Promise<string>;
  /** The bound address of the metrics listener (`--metrics-address`) once listening; else undefined. */
  metricsAddress(): string | undefined;
  /**
   * Reads the trusted keyring file again (the entry point calls it on SIGHUP; file changes
   * trigger it by themselves) and logs the outcome; a bad file keeps the keys loaded before.
   */
  reloadTrust(): Promise<TrustReload>;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes storage. */
  close(): Promise<void>;
}

/**
 * A start-up failure the environment caused, not the program: the port in use, a data directory
 * that is a file or read-only, a missing TLS file. Its message is one line naming the setting and
 * where it was given (e.g. `--directory: /srv/bindle is not a directory`); the entry point prints
 * it as is and exits 1. The error that caused it is its `cause`.
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** The code of a system error (`EADDRINUSE`, `ENOENT`, …) or an SQLite error (`SQLITE_CANTOPEN`); else undefined. */
function errorCode(err: unknown): string | undefined {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^(E[A-Z0-9_]+|SQLITE_[A-Z_]+)$/.test(code) ? code : undefined;
}

/** What went wrong, for a StartupError: `read-only file system (EROFS)` from Node's `EROFS: read-only file system, open '…'`. */
function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = errorCode(err);
  const system = /^[A-Z0-9_]+: ([^,]+),/.exec(message);
  if (system?.[1] !== undefined && code !== undefined) return `${system[1]} (${code})`;
  return code === undefined || message.includes(code) ? message : `${message} (${code})`;
}

/**
 * Creates the data directory if needed and checks that it is a directory the server can write
 * (its index, parcels, upload staging and part spool are written there).
 */
async function prepareDirectory(config: ServerConfig): Promise<void> {
  const where = `${config.sources.directory}: ${config.directory}`;
  try {
    await mkdir(config.directory, { recursive: true });
  } catch (err) {
    const code = errorCode(err);
    if (code === 'EEXIST') throw new StartupError(`${where} is not a directory`, { cause: err });
    if (code === 'ENOTDIR') throw new StartupError(`${where} cannot be created: a part of its path is a file`, { cause: err });
    // A recursive mkdir under a read-only file system fails with ENOENT: say why the parent refused.
    const parent = await nearestExisting(dirname(config.directory));
    const refusal = await access(parent, constants.W_OK).then(() => undefined, (denied: unknown) => denied);
    const why = refusal === undefined ? reasonOf(err) : `${parent} is not writable: ${reasonOf(refusal)}`;
    throw new StartupError(`${where} cannot be created: ${why}`, { cause: err });
  }
  try {
    await access(config.directory, constants.W_OK);
  } catch (err) {
    throw new StartupError(`${where} is not writable: ${reasonOf(err)}`, { cause: err });
  }
}

/** `path` or its nearest ancestor that exists. */
async function nearestExisting(path: string): Promise<string> {
  for (let at = path; ; at = dirname(at)) {
    if ((await stat(at).then(() => true, () => false)) || dirname(at) === at) return at;
  }
}

/** Reads the TLS certificate and key, checking each is PEM and that they belong together. */
async function readTls(tls: NonNullable<ServerConfig['tls']>, sources: ServerConfig['sources']): Promise<{ cert: Buffer; key: Buffer }> {
  const certWhere = `${sources.tlsCert ?? '--tls-cert'}: ${tls.certPath}`;
  const keyWhere = `${sources.tlsKey ?? '--tls-key'}: ${tls.keyPath}`;
  const read = async (path: string, where: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new StartupError(`${where} cannot be read: ${reasonOf(err)}`, { cause: err });
    }
  };
  const [cert, key] = await Promise.all([read(tls.certPath, certWhere), read(tls.keyPath, keyWhere)]);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (err) {
    throw new StartupError(`${certWhere} is not a PEM certificate: ${reasonOf(err)}`, { cause: err });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new StartupError(`${keyWhere} is not a PEM private key (an unencrypted one): ${reasonOf(err)}`, { cause: err });
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new StartupError(`${keyWhere} is not the private key of the certificate in ${certWhere}`);
  }
  return { cert, key };
}

/** The StartupError for a listener (`--address` or `--metrics-address`) that could not listen; `err` itself when unexpected. */
function listenFailure(err: unknown, source: string, address: { host: string; port: number }): unknown {
  const code = errorCode(err);
  const why: Readonly<Record<string, string>> = {
    EADDRINUSE: 'is already in use; stop what listens there or choose another port',
    EADDRNOTAVAIL: 'is not an address of this host; use one of its addresses, or 0.0.0.0 for all of them',
    EACCES: 'may not be listened on by this user (ports below 1024 need privileges); choose another port',
    ENOTFOUND: 'names a host that does not resolve; use an IP address or a name this host resolves',
    EAI_AGAIN: 'names a host that could not be resolved now; use an IP address or try again',
  };
  const reason = code === undefined ? undefined : why[code];
  if (code === undefined || reason === undefined) return err;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return new StartupError(`${source}: ${host}:${address.port} ${reason} (${code})`, { cause: err });
}

/**
 * For `.catch` on opening what a setting names: a system or SQLite error becomes a StartupError
 * `<source>: cannot open <what>: <reason>`; any other error (a BindleError saying what is wrong
 * with the contents, a bug) passes unchanged.
 */
function openFailure(source: string, what: string): (err: unknown) => never {
  return (err) => {
    if (errorCode(err) === undefined || isBindleError(err)) throw err;
    throw new StartupError(`${source}: cannot open ${what}: ${reasonOf(err)}`, { cause: err });
  };
}

/** Logs the outcome of a keyring reload. */
function logTrustReload(log: FastifyBaseLogger, keyring: string, result: TrustReload): void {
  if (result.ok) log.info({ keyring, trustedKeys: result.keys, changed: result.changed }, 'reloaded the trusted keyring');
  else log.error({ keyring, trustedKeys: result.keys, err: result.error.message }, 'keyring reload failed: keeping the keys loaded before');
}

/**
 * Opens the trusted keyring. A missing file at the default keyring path is an empty keyring; a
 * keyring named explicitly must exist and parse, else start-up fails naming where it was given.
 */
async function openTrust(config: ServerConfig, log: FastifyBaseLogger): Promise<FileTrustStore> {
  try {
    return await FileTrustStore.open(config.keyringPath, {
      mustExist: config.keyringSource !== undefined,
      onWatchReload: (result) => logTrustReload(log, config.keyringPath, result),
      onWatchUnavailable: (err) => log.warn({ keyring: config.keyringPath, err: err.message }, 'cannot watch the keyring for changes; SIGHUP reloads it'),
    });
  } catch (err) {
    if (!isBindleError(err) || config.keyringSource === undefined) throw err;
    throw new BindleError('invalid_config', `${config.keyringSource}: ${err.message}`, { cause: err });
  }
}

export async function openServer(config: ServerConfig, opts: { hostLabel: string }): Promise<RunningServer> {
  const destination = openLogDestination();
  const log = pino({ level: config.logLevel, name: 'bindle-server' }, destination.lines);
  // Warnings the backends emit as they open (the AWS SDK's) go to the log too, until close.
  const stopLoggingWarnings = logProcessWarnings(log);
  try {
    return await assembleServer(config, opts, { destination, log, stopLoggingWarnings });
  } catch (err) {
    stopLoggingWarnings();
    throw err;
  }
}

/** The server's log: where its lines go, its logger, and what puts Node's warning printer back. */
interface ServerLogging {
  readonly destination: LogDestination;
  readonly log: FastifyBaseLogger;
  readonly stopLoggingWarnings: () => void;
}

/** openServer's work, given its log. */
async function assembleServer(
  config: ServerConfig,
  opts: { hostLabel: string },
  { destination, log, stopLoggingWarnings }: ServerLogging,
): Promise<RunningServer> {
  await prepareDirectory(config);
  // Read first: a bad TLS file, or a bad htpasswd, token or ACL file, fails start-up before
  // anything is created or opened (a host key, an index, a parcel store).
  const https = config.tls === undefined ? undefined : await readTls(config.tls, config.sources);
  const auth = await buildAuth(config, log);

  const trust = await openTrust(config, log);
  const identity = await loadHostIdentity(config.signingKeysPath, {
    createIfMissing: !isSharedIndex(config.index),
    label: opts.hostLabel,
  }).catch(openFailure(config.sources.signingKeys, `host signing key file ${config.signingKeysPath}`)).catch((err: unknown) => {
    trust.close();
    throw err;
  });
  if (identity.created) log.info({ path: config.signingKeysPath }, 'created a new host signing key');
  const strategy = parseStrategy(config.strategy);
  const metrics = new ServerMetrics({ version: VERSION });
  metrics.watchLog(destination);
  const verifier = new InstrumentedVerifier(new TrustStoreVerifier(trust, strategy, identity.keyring), metrics);

  const storedParcels = await openParcelStore(config.parcels, {
    partSpoolDirectory: join(config.directory, PART_SPOOL_DIRECTORY),
    staging: {
      stagingMaxAgeMs: config.stagingMaxAgeMs,
      onSweepError: (err) => log.warn({ err }, 'removing abandoned uploads failed; the next sweep tries again'),
    },
  }).catch(openFailure(config.sources.parcels, `parcel store ${describeParcels(config.parcels)}`)).catch((err: unknown) => {
    trust.close();
    throw err;
  });
  const storedIndex = await openInvoiceIndex(config.index, { queryWorkers: true })
    .catch(openFailure(config.sources.index, `index ${describeIndex(config.index)}`))
    .catch(async (err: unknown) => {
    await storedParcels.close();
    trust.close();
    throw err;
  });
  const parcels = new InstrumentedParcelStore(storedParcels, metrics);
  const index = new InstrumentedInvoiceIndex(storedIndex, metrics);
  const service = new BindleService({
    parcels, index, verifier, signer: identity.signer, hostKeyring: identity.keyring, maxParcelBytes: config.maxParcelBytes,
    stagingMaxAgeMs: config.stagingMaxAgeMs,
  });
  const { oidc, acl } = auth;
  const authenticator = new InstrumentedAuthenticator(auth.authenticator, metrics);
  const authorizer = new InstrumentedAuthorizer(auth.authorizer, metrics);
  if (auth.htpasswd !== undefined) metrics.watchCache('htpasswd', auth.htpasswd);

  let state: ServerState = 'starting';
  const app = await buildApp({
    service, authenticator, authorizer,
    maxInvoiceBytes: config.maxInvoiceBytes,
    bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
    sendTimeoutMs: config.sendTimeoutMs,
    headersTimeoutMs: config.headersTimeoutMs,
    maxConnections: config.maxConnections,
    trustProxy: config.trustProxy,
    version: VERSION,
    logger: log,
    state: () => state,
    // Readiness probes go to the backends directly, so they stay out of the storage metrics.
    readinessChecks: storageChecks(storedIndex, storedParcels),
    metrics,
    serveMetrics: config.metricsAddress === undefined,
    ...(oidc !== undefined ? { login: oidc } : {}),
    ...(https !== undefined ? { https } : {}),
  });

  let closed = false;
  let stopAclReloads = (): void => {};
  const metricsApp = config.metricsAddress === undefined ? undefined : buildMetricsApp(metrics);
  let metricsAddress: string | undefined;
  return {
    app,
    log: app.log,
    async listen() {
      const address = await app.listen({ host: config.address.host, port: config.address.port }).catch((err: unknown) => {
        throw listenFailure(err, config.sources.address, config.address);
      });
      const metricsAt = config.metricsAddress;
      if (metricsApp !== undefined && metricsAt !== undefined) {
        metricsAddress = await metricsApp.listen({ host: metricsAt.host, port: metricsAt.port }).catch((err: unknown) => {
          throw listenFailure(err, config.sources.metricsAddress ?? '--metrics-address', metricsAt);
        });
      }
      state = 'serving';
      app.log.info(
        {
          address, metrics: `${metricsAddress ?? address}/metrics`, directory: config.directory, strategy: formatStrategy(strategy),
          index: describeIndex(config.index), parcels: describeParcels(config.parcels),
          keyring: config.keyringPath, trustedKeys: trust.current().size, keyringWatched: trust.watching,
          hostKey: identity.signer.publicKey, maxConnections: app.server.maxConnections,
        },
        'bindle-server listening',
      );
      if (config.implicitUnauthenticated) {
        app.log.warn('no authentication configured: serving UNAUTHENTICATED, on a loopback address only');
      } else if (config.unauthenticated) {
        app.log.warn('serving UNAUTHENTICATED (--unauthenticated): anyone who can reach this address can write');
      } else if (acl === undefined) {
        app.log.warn('no ACL configured (--acl-file): every authenticated user may push and yank any bindle');
      } else {
        app.log.info({ acl: acl.path, defaultForAuthenticated: acl.defaultActions }, 'writes are authorized by name with the ACL file');
      }
      if (acl !== undefined) stopAclReloads = watchAcl(acl, app.log);
      return address;
    },
    metricsAddress: () => metricsAddress,
    async reloadTrust() {
      const result = await trust.reload();
      logTrustReload(log, config.keyringPath, result);
      return result;
    },
    async close() {
      if (closed) return;
      closed = true;
      state = 'stopping';
      stopAclReloads();
      const grace = setTimeout(() => {
        app.log.warn('shutdown grace period over: closing remaining connections');
        app.server.closeAllConnections();
      }, config.shutdownGraceMs);
      grace.unref();
      trust.close();
      try {
        await Promise.all([app.close(), metricsApp?.close()]);
      } finally {
        clearTimeout(grace);
        stopLoggingWarnings();
        await index.close();
        await parcels.close();
        // The process may exit next: the last lines, unless the log's reader has stopped reading.
        await destination.drained(LOG_DRAIN_MS);
      }
    },
  };
}

/**
 * Re-reads the ACL file on SIGHUP and when it changes (polled every second); a failed reload is
 * logged and the last good version stays in force. Returns the function that stops both.
 */
function watchAcl(acl: AclAuthorizer, log: FastifyBaseLogger): () => void {
  const reload = (why: string): void => {
    acl.reload().then(
      () => log.info({ acl: acl.path, why }, 'ACL reloaded'),
      (err: unknown) => log.error({ acl: acl.path, why, err }, 'ACL reload failed: the previous version stays in force'),
    );
  };
  const onSighup = (): void => reload('SIGHUP');
  const onChange = (): void => reload('file changed');
  process.on('SIGHUP', onSighup);
  watchFile(acl.path, { interval: 1000 }, onChange);
  return () => {
    process.off('SIGHUP', onSighup);
    unwatchFile(acl.path, onChange);
  };
}
