/**
 * Builds the Fastify application from its parts: the Bindle service, the authenticator and
 * authorizer, limits and logger. Concrete implementations are chosen by the caller (the entry
 * point, or a test); this module only wires them together.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { actionForMethod, type Authenticator, type Authorizer } from './auth/types.js';
import { registerRequestAuth } from './auth/request-auth.js';
import { DEFAULT_BODY_IDLE_TIMEOUT_MS, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_SEND_TIMEOUT_MS, registerBodyIdleTimeout, registerSendTimeout } from './http/request-timeouts.js';
import { clientErrorHandler, registerClientErrors } from './http/client-errors.js';
import { limitConnections } from './http/connection-limit.js';
import { registerDateHeader } from './http/date-header.js';
import { frameworkErrorHandler, registerErrorHandling } from './http/error-handler.js';
import { lazyChildLoggerFactory, requestIdSource } from './http/request-logger.js';
import { recordRoutes } from './http/route-table.js';
import { registerFastLane } from './http/fast-lane.js';
import { registerHttpMetrics, type HttpRecorders } from './metrics/http-metrics.js';
import type { ServerMetrics } from './metrics/server-metrics.js';
import type { BindleService } from './service/bindle-service.js';
import { DEFAULT_READINESS_DEADLINE_MS, type ReadinessCheck, type ServerState } from './service/readiness.js';
import { healthRoutes } from './routes/health-routes.js';
import { invoiceRoutes } from './routes/invoice-routes.js';
import { loginRoutes, type DeviceLogin } from './routes/login-routes.js';
import { metricsRoutes } from './routes/metrics-routes.js';
import { openapiRoutes } from './routes/openapi-routes.js';
import { queryRoutes } from './routes/query-routes.js';
import { UI_PREFIX } from './ui/pages.js';
import { uiFrameworkError, webUi } from './ui/web-ui.js';
import { ociFrameworkError, registerOciErrorHandling } from './oci/oci-errors.js';
import { ociRoutes } from './oci/oci-routes.js';

export interface AppOptions {
  service: BindleService;
  authenticator: Authenticator;
  authorizer: Authorizer;
  maxInvoiceBytes: number;
  version: string;
  /** A pino logger; none (silent) when absent. */
  logger?: FastifyBaseLogger;
  https?: { cert: Buffer; key: Buffer };
  /** The OIDC device flow behind `/login`; the route exists only when this is set. */
  login?: DeviceLogin;
  /** Where the server is in its life (default: serving): /readyz is 503 unless serving, /healthz while stopping. */
  state?: () => ServerState;
  /** What /readyz checks while serving (default: nothing), each within `readinessDeadlineMs` (default 2 s). */
  readinessChecks?: readonly ReadinessCheck[];
  readinessDeadlineMs?: number;
  /** Records every request into these metrics (none when absent). */
  metrics?: ServerMetrics;
  /** Serve the metrics at /metrics (default true; false when a listener of their own serves them). */
  serveMetrics?: boolean;
  /** A request whose body makes no progress for this long is aborted with 408 (default 30 s). */
  bodyIdleTimeoutMs?: number;
  /** A connection whose reply has waited this long for its client to take any of it is closed (default 60 s). */
  sendTimeoutMs?: number;
  /** The whole request head must arrive within this time, else 408 (default 20 s). */
  headersTimeoutMs?: number;
  /** Open connections at most; new ones beyond are closed at once (default: no cap; the server's default is in its config, see http/connection-limit.ts). */
  maxConnections?: number;
  /**
   * Addresses and CIDR ranges of trusted reverse proxies: a request from one of them has the
   * client address its `X-Forwarded-For` names (`request.ip`). Default none: the peer's address.
   */
  trustProxy?: readonly string[];
}


/** Whether a request URL (path and query) is `prefix` or below it. */
function underPrefix(url: string, prefix: string): boolean {
  return url.startsWith(prefix) && (url.length === prefix.length || '/?'.includes(url.charAt(prefix.length)));
}

export const API_PREFIX = '/v1';
/** Where the OCI Distribution API over the same bindles is served (server/oci/). */
export const OCI_PREFIX = '/v2';

/**
 * No route declares a Fastify schema: bodies are streamed to the service and documents are
 * validated by core/codec against schema/. These factories stand in for Fastify's defaults (Ajv
 * with formats, fast-json-stringify), which it would otherwise load at every start for nothing;
 * a route that did declare a schema fails when the app becomes ready, saying so.
 */
function noRouteSchemas(): never {
  throw new Error('bindle-server routes declare no Fastify schemas: validate with core/codec instead');
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const headersTimeout = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  // Node checks the headers timeout every connectionsCheckingInterval; keep that a fraction of it.
  // The Host header is checked by registerClientErrors, which answers with an error body.
  const serverOptions = { requireHostHeader: false, headersTimeout, connectionsCheckingInterval: Math.max(250, Math.min(5000, headersTimeout / 4)) };
  // Set once the metrics hooks are added: requests Fastify answers outside every route run no hooks.
  let recorders: HttpRecorders | undefined;
  // Fastify's request ids, from a source the fast lane shares (it logs the requests it answers).
  const requestId = requestIdSource();
  const trustProxy = opts.trustProxy !== undefined && opts.trustProxy.length > 0 ? [...opts.trustProxy] : undefined;
  // Fastify answers some errors before any route (or API scope) is found: each API's own renderer answers those under its prefix.
  const uiFrameworkErrors = uiFrameworkError(opts.version);
  const frameworkErrors = (url: string): typeof frameworkErrorHandler =>
    underPrefix(url, OCI_PREFIX) ? ociFrameworkError : underPrefix(url, UI_PREFIX) ? uiFrameworkErrors : frameworkErrorHandler;
  const app = Fastify({
    // Each request's logger is built when it first logs at an enabled level (./http/request-logger.ts).
    ...(opts.logger !== undefined ? { loggerInstance: opts.logger, childLoggerFactory: lazyChildLoggerFactory } : { logger: false }),
    genReqId: requestId,
    // Every GET route answers HEAD too (RFC 9110 §9.1); a route whose HEAD is its own declares it before its GET.
    exposeHeadRoutes: true,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...(trustProxy !== undefined ? { trustProxy } : {}),
    routerOptions: { maxParamLength: 2048, ignoreDuplicateSlashes: false },
    schemaController: { compilersFactory: { buildValidator: noRouteSchemas, buildSerializer: noRouteSchemas } },
    clientErrorHandler,
    frameworkErrors: (err, request, reply) => {
      recorders?.unrouted(request, reply);
      frameworkErrors(request.url)(err, request, reply);
    },
    ...(opts.https !== undefined ? { https: { ...opts.https, ...serverOptions } } : { http: serverOptions }),
  }) as unknown as FastifyInstance;

  if (opts.maxConnections !== undefined) limitConnections(app.server, opts.maxConnections, opts.logger, opts.metrics);
  recordRoutes(app);
  registerErrorHandling(app);
  registerClientErrors(app);
  registerDateHeader(app);
  registerBodyIdleTimeout(app, opts.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS);
  registerSendTimeout(app, opts.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS);
  if (opts.metrics !== undefined) recorders = registerHttpMetrics(app, opts.metrics);
  healthRoutes(app, {
    version: opts.version,
    state: opts.state ?? (() => 'serving'),
    checks: opts.readinessChecks ?? [],
    deadlineMs: opts.readinessDeadlineMs ?? DEFAULT_READINESS_DEADLINE_MS,
  });
  if (opts.metrics !== undefined && opts.serveMetrics !== false) metricsRoutes(app, { metrics: opts.metrics });
  openapiRoutes(app);

  await app.register(
    (api, _options, done) => {
      // Bodies are streamed by the routes themselves (parcels to the store, invoices with a size limit).
      api.removeAllContentTypeParsers();
      api.addContentTypeParser('*', (_request, payload, next) => next(null, payload));
      registerRequestAuth(api, opts);
      invoiceRoutes(api, { service: opts.service, maxInvoiceBytes: opts.maxInvoiceBytes });
      queryRoutes(api, { service: opts.service });
      if (opts.login !== undefined) loginRoutes(api, { login: opts.login });
      done();
    },
    { prefix: API_PREFIX },
  );
  await app.register(
    (oci, _options, done) => {
      oci.removeAllContentTypeParsers();
      oci.addContentTypeParser('*', (_request, payload, next) => next(null, payload));
      registerOciErrorHandling(oci);
      // Every OCI write (a blob, an upload session and its cancel, a manifest) is a push: /v2 has no yank.
      registerRequestAuth(oci, { ...opts, actionOf: (request) => (actionForMethod(request.method) === 'read' ? 'read' : 'push') });
      ociRoutes(oci, { service: opts.service, authorizer: opts.authorizer });
      done();
    },
    { prefix: OCI_PREFIX },
  );
  await app.register(webUi, { service: opts.service, authenticator: opts.authenticator, authorizer: opts.authorizer, version: opts.version });
  registerFastLane(app, {
    service: opts.service,
    authorizer: opts.authorizer,
    prefix: API_PREFIX,
    ...(opts.logger !== undefined
      ? {
          requestLog: {
            logger: app.log,
            requestId,
            ...(trustProxy !== undefined ? { trustProxy } : {}),
          },
        }
      : {}),
    ...(recorders !== undefined ? { record: recorders.route(`${API_PREFIX}/_i/*`) } : {}),
  });
  return app;
}
