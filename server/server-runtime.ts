/**
 * Assembles a running server from a validated ServerConfig: opens the data directory (file
 * parcel store, SQLite index, invoice files), loads the keyring and the host signing key
 * (creating it on first start), builds the auth seams and the app, listens, and closes
 * everything in order. Used by the entry point and by end-to-end tests.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { BindleError } from '../core/errors/bindle-error.js';
import { Keyring } from '../core/signing/keyring.js';
import { publicKeyEntry } from '../core/signing/keys.js';
import { SecretKeyStore } from '../core/signing/secret-key-store.js';
import { parseStrategy, formatStrategy } from '../core/signing/verification.js';
import { KeyringVerifier } from '../core/signing/verifier.js';
import { VERSION } from '../core/version.js';
import { buildApp } from './app.js';
import { buildAuth } from './auth/build-auth.js';
import type { ServerConfig } from './config/server-config.js';
import { BindleService } from './service/bindle-service.js';
import { reindex, type ReindexReport } from './service/reindex.js';
import { FileParcelStore } from './storage/file-parcel-store.js';
import { InvoiceFiles } from './storage/invoice-files.js';
import { SqliteInvoiceIndex } from './storage/sqlite-invoice-index.js';

export const INDEX_FILE = 'index.sqlite';

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly log: FastifyBaseLogger;
  /** Starts listening; resolves with the bound address (e.g. http://127.0.0.1:8080). */
  listen(): Promise<string>;
  reindex(): Promise<ReindexReport>;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes storage. */
  close(): Promise<void>;
}

export async function openServer(config: ServerConfig, opts: { hostLabel: string }): Promise<RunningServer> {
  const log = pino({ level: config.logLevel, name: 'bindle-server' });
  await mkdir(config.directory, { recursive: true });

  const keyring = await Keyring.loadOrEmpty(config.keyringPath);
  const { store: secrets, created } = await SecretKeyStore.loadOrCreate(config.signingKeysPath, opts.hostLabel, ['host']);
  if (created) log.info({ path: config.signingKeysPath }, 'created a new host signing key');
  const hostKey = secrets.firstMatching('host');
  if (hostKey === undefined) {
    throw new BindleError('invalid_config', `no key with the host role in ${config.signingKeysPath}`);
  }
  const hostKeyring = new Keyring();
  for (const entry of secrets.entries()) hostKeyring.add(publicKeyEntry(entry));
  const strategy = parseStrategy(config.strategy);
  const verifier = new KeyringVerifier(keyring.merge(hostKeyring), strategy);

  const parcels = await FileParcelStore.open(config.directory);
  const index = SqliteInvoiceIndex.open(join(config.directory, INDEX_FILE));
  const files = new InvoiceFiles(config.directory);
  const service = new BindleService({
    parcels, index, files, verifier, hostKey, hostKeyring, maxParcelBytes: config.maxParcelBytes,
  });
  const { authenticator, authorizer, oidc } = await buildAuth(config);

  let ready = true;
  const https = config.tls === undefined
    ? undefined
    : { cert: await readFile(config.tls.certPath), key: await readFile(config.tls.keyPath) };
  const app = await buildApp({
    service, authenticator, authorizer,
    maxInvoiceBytes: config.maxInvoiceBytes,
    bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
    headersTimeoutMs: config.headersTimeoutMs,
    version: VERSION,
    logger: log,
    isReady: () => ready,
    ...(oidc !== undefined ? { login: oidc } : {}),
    ...(https !== undefined ? { https } : {}),
  });

  let closed = false;
  return {
    app,
    log: app.log,
    async listen() {
      const address = await app.listen({ host: config.address.host, port: config.address.port });
      app.log.info(
        {
          address, directory: config.directory, strategy: formatStrategy(strategy),
          keyring: config.keyringPath, trustedKeys: keyring.entries().length,
        },
        'bindle-server listening',
      );
      if (config.implicitUnauthenticated) {
        app.log.warn('no authentication configured: serving UNAUTHENTICATED, on a loopback address only');
      } else if (config.unauthenticated) {
        app.log.warn('serving UNAUTHENTICATED (--unauthenticated): anyone who can reach this address can write');
      }
      return address;
    },
    reindex: () => reindex(files, index),
    async close() {
      if (closed) return;
      closed = true;
      ready = false;
      const grace = setTimeout(() => {
        app.log.warn('shutdown grace period over: closing remaining connections');
        app.server.closeAllConnections();
      }, config.shutdownGraceMs);
      grace.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(grace);
        await index.close();
        await parcels.close();
      }
    },
  };
}
