/**
 * An in-process Bindle app on real parts (the backend pair BINDLE_TEST_BACKENDS picks, see
 * test-backends.ts; keyring verifier) with a temp directory, for `app.inject` HTTP tests.
 * Closed (its directory, schema and prefix removed) at teardown.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import type { Invoice, SecretKeyEntry } from '../../schema/index.js';
import { canonicalInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import { Keyring } from '../../core/signing/keyring.js';
import { LocalSigner } from '../../core/signing/signer.js';
import { DEFAULT_STRATEGY, type VerificationStrategy } from '../../core/signing/verification.js';
import { KeyringVerifier } from '../../core/signing/verifier.js';
import { buildApp } from '../../server/app.js';
import type { DeviceLogin } from '../../server/routes/login-routes.js';
import { AlwaysAuthorizer, NoAuthenticator, type Authenticator, type Authorizer } from '../../server/auth/index.js';
import { BindleService } from '../../server/service/bindle-service.js';
import { InstrumentedInvoiceIndex } from '../../server/metrics/instrumented-invoice-index.js';
import { InstrumentedParcelStore } from '../../server/metrics/instrumented-parcel-store.js';
import type { ServerMetrics } from '../../server/metrics/server-metrics.js';
import { storageChecks, type ServerState } from '../../server/service/readiness.js';
import type { InvoiceIndex } from '../../server/storage/invoice-index.js';
import type { ParcelStore } from '../../server/storage/parcel-store.js';
import { creatorKeyring } from './bindles.js';
import { testStorage, type BackendPair } from './test-backends.js';

export interface TestApp {
  app: FastifyInstance;
  service: BindleService;
  dir: string;
  hostKey: SecretKeyEntry;
  parcels: ParcelStore;
  index: InvoiceIndex;
  /** The backend pair the app runs on. */
  backends: BackendPair;
  /** The file parcel store's directory (`<it>/parcels/`); undefined when parcels are in S3. */
  parcelDirectory: string | undefined;
}

export interface TestAppOptions {
  keyring?: Keyring;
  strategy?: VerificationStrategy;
  authenticator?: Authenticator;
  authorizer?: Authorizer;
  maxInvoiceBytes?: number;
  maxParcelBytes?: number;
  dir?: string;
  login?: DeviceLogin;
  /** A pino logger for the app (default: none). */
  logger?: FastifyBaseLogger;
  /** Addresses of reverse proxies whose forwarding headers are trusted (default: none). */
  trustProxy?: readonly string[];
  bodyIdleTimeoutMs?: number;
  sendTimeoutMs?: number;
  headersTimeoutMs?: number;
  maxConnections?: number;
  /** Opens the invoice index (default: the configured pair's). */
  openIndex?: (dir: string) => Promise<InvoiceIndex>;
  /** The server's lifecycle state /readyz reports (default: serving). */
  state?: () => ServerState;
  /** Metrics to record into (the service then uses the instrumented store and index) and serve at /metrics. */
  metrics?: ServerMetrics;
}

export async function makeTestApp(t: Test, opts: TestAppOptions = {}): Promise<TestApp> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'bindle-http-'));
  const hostKey = createSecretKey('Test Host <host@bindle.test>', ['host']);
  const hostKeyring = new Keyring();
  hostKeyring.add(publicKeyEntry(hostKey));
  const trusted = (opts.keyring ?? creatorKeyring()).merge(hostKeyring);
  const storage = await testStorage(dir);
  const parcels = await storage.openParcels();
  const index = opts.openIndex === undefined ? await storage.openIndex() : await opts.openIndex(dir);
  const service = new BindleService({
    parcels: opts.metrics === undefined ? parcels : new InstrumentedParcelStore(parcels, opts.metrics),
    index: opts.metrics === undefined ? index : new InstrumentedInvoiceIndex(index, opts.metrics),
    verifier: new KeyringVerifier(trusted, opts.strategy ?? DEFAULT_STRATEGY),
    signer: new LocalSigner(hostKey),
    hostKeyring,
    maxParcelBytes: opts.maxParcelBytes ?? 1 << 30,
  });
  const app = await buildApp({
    service,
    authenticator: opts.authenticator ?? new NoAuthenticator(),
    authorizer: opts.authorizer ?? new AlwaysAuthorizer(),
    maxInvoiceBytes: opts.maxInvoiceBytes ?? 1 << 20,
    version: 'test',
    readinessChecks: storageChecks(index, parcels),
    ...(opts.state !== undefined ? { state: opts.state } : {}),
    ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
    ...(opts.login !== undefined ? { login: opts.login } : {}),
    ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    ...(opts.trustProxy !== undefined ? { trustProxy: opts.trustProxy } : {}),
    ...(opts.bodyIdleTimeoutMs !== undefined ? { bodyIdleTimeoutMs: opts.bodyIdleTimeoutMs } : {}),
    ...(opts.headersTimeoutMs !== undefined ? { headersTimeoutMs: opts.headersTimeoutMs } : {}),
    ...(opts.sendTimeoutMs !== undefined ? { sendTimeoutMs: opts.sendTimeoutMs } : {}),
    ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
  });
  t.teardown(async () => {
    await app.close();
    await index.close();
    await parcels.close();
    await storage.release();
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
  });
  return { app, service, dir, hostKey, parcels, index, backends: storage.pair, parcelDirectory: storage.parcelDirectory };
}

/** Puts an invoice straight into storage, bypassing verification (as the reference tests do). */
export async function storeInvoiceDirect(ta: TestApp, invoice: Invoice): Promise<void> {
  const inv = canonicalInvoice(invoice);
  const id = { name: inv.bindle.name, version: inv.bindle.version };
  const toml = renderInvoice(inv, 'toml');
  await ta.index.insert({
    ...id,
    canonicalId: canonicalId(id),
    invoice: inv,
    toml,
    json: renderInvoice(inv, 'json'),
    yanked: inv.yanked === true,
    createdAt: Date.now(),
  });
}

/** Makes a test app listening on 127.0.0.1 (port 0); resolves with it and its API URL (`http://127.0.0.1:N/v1/`). */
export async function listenTestApp(t: Test, opts: TestAppOptions = {}): Promise<TestApp & { url: string }> {
  const ta = await makeTestApp(t, opts);
  const address = await ta.app.listen({ port: 0, host: '127.0.0.1' });
  return { ...ta, url: `${address}/v1/` };
}

/**
 * Starts `ta` listening on 127.0.0.1 (port 0) for raw TCP clients, whose connections are closed
 * when the test ends (a raw client may leave one open); resolves with the port.
 */
export async function listenForRawClients(t: Test, ta: TestApp): Promise<number> {
  await ta.app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => ta.app.server.closeAllConnections());
  return (ta.app.server.address() as AddressInfo).port;
}

/** A listening test app that trusts a fresh creator key (not the reference one); resolves with both. */
export async function listenWithNewCreator(t: Test, label: string): Promise<{ server: TestApp & { url: string }; creator: SecretKeyEntry }> {
  const creator = createSecretKey(label, ['creator']);
  const keyring = new Keyring();
  keyring.add(publicKeyEntry(creator));
  return { server: await listenTestApp(t, { keyring }), creator };
}
