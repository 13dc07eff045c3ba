/**
 * The HTTP side of the auth seams: one onRequest hook that refuses a request with more than one
 * Authorization header (400 bad_request, before any authentication) and authenticates every API request
 * carrying credentials (passing the client's address, for FailedAttemptLimiter; one without any
 * is anonymous, as the Authenticator contract says, decided without asking the authenticator)
 * and asks the authorizer whether the principal may do what the request does to the bindle it names; `authorizeBindleName` asks
 * again once a route knows a name only from the body (invoice create). Every write, accepted or
 * refused, is written to the audit log (../audit/audit-log.ts) with the principal's id. A
 * too_many_requests refusal carries Retry-After.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { registerAuditLog, type AuditSubject } from '../audit/audit-log.js';
import { parseInvoicePath } from '../http/request-parsing.js';
import { repeatedAuthorization } from './authorization-header.js';
import { actionForRequest, carriesCredentials, type Action, type Authenticator, type Authorizer, type Principal } from './types.js';

export interface RequestAuthOptions {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  /** The action a request of this scope performs; default: actionForRequest (the `/v1` API's). */
  readonly actionOf?: (request: FastifyRequest) => Action;
}

/** What the hook decided for a request, kept for the route's second question and the audit record. */
interface RequestAuth {
  principal: Principal | undefined;
  readonly action: Action;
  name: string | undefined;
  /** The version, once a route found it in the body (invoice create). */
  version?: string;
  readonly authorizer: Authorizer;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What the auth hook decided (null before it ran, and outside the API scopes). */
    bindleAuth: RequestAuth | null;
  }
}

/** The auth hook's decision for a request; undefined when the hook did not see it. */
function decided(request: FastifyRequest): RequestAuth | undefined {
  return request.bindleAuth ?? undefined;
}

/**
 * Refusals of anonymous reads decided before Fastify saw the request (anonymousReadAllowed),
 * which the hook then refuses with: the authorizer is asked once per request, so that its
 * refusals are counted once (InstrumentedAuthorizer).
 */
const earlyRefusals = new WeakMap<IncomingMessage, Error>();

/**
 * Whether the authorizer lets an anonymous caller read, asked before Fastify routes the request
 * (../http/fast-lane.ts) as the hook would ask it for an anonymous GET or HEAD without a query;
 * a refusal is kept for the hook, which refuses the request with it.
 */
export function anonymousReadAllowed(raw: IncomingMessage, authorizer: Authorizer): boolean {
  try {
    authorizer.authorize(undefined, 'read', undefined);
    return true;
  } catch (err) {
    earlyRefusals.set(raw, err instanceof Error ? err : new Error(String(err)));
    return false;
  }
}

/** The bindle name a `/_i/{name}/{version}[@sha]` request acts on; undefined elsewhere or when unparseable (the route then refuses it). */
function nameOf(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, string | undefined> | undefined;
  const path = params?.['*'];
  if (path === undefined || !request.routeOptions.url?.startsWith('/v1/_i/')) return undefined;
  try {
    return parseInvoicePath(path).id.name;
  } catch {
    return undefined;
  }
}

/** Adds the auth and audit hooks to `api` (the `/v1` or `/v2` scope). */
export function registerRequestAuth(api: FastifyInstance, opts: RequestAuthOptions): void {
  // A request decoration, not a WeakMap keyed by request: a WeakMap entry per request costs
  // more than the rest of the hook (ephemeron bookkeeping in every GC).
  if (!api.hasRequestDecorator('bindleAuth')) api.decorateRequest('bindleAuth', null);
  // A callback hook rather than an async one: at most one promise per request (the authenticator's), not three.
  api.addHook('onRequest', (request, _reply, done) => {
    const action = opts.actionOf?.(request) ?? actionForRequest(request.method, request.query);
    const auth: RequestAuth = { principal: undefined, action, name: action === 'read' ? undefined : nameOf(request), authorizer: opts.authorizer };
    // Recorded before deciding, so that the audit record of a refusal names what was refused.
    request.bindleAuth = auth;
    const header = request.headers.authorization;
    // Node keeps the first of several Authorization headers: refused before anything is decided on it.
    const repeated = header === undefined ? undefined : repeatedAuthorization(request.raw.rawHeaders);
    if (repeated !== undefined) {
      done(repeated);
      return;
    }
    // No credentials: anonymous by the Authenticator contract, decided now rather than after a
    // promise (an anonymous GET's route then runs in this same turn, not one microtask later).
    if (!carriesCredentials(header)) {
      const refused = action === 'read' ? earlyRefusals.get(request.raw) : undefined;
      if (refused !== undefined) done(refused);
      else decide(auth, undefined, done);
      return;
    }
    // A too_many_requests refusal carries its retry delay: the error handler sends Retry-After.
    opts.authenticator.authenticate(header, { address: request.ip }).then(
      (principal) => decide(auth, principal, done),
      (err: unknown) => done(err as Error),
    );
  });
  registerAuditLog(api, auditSubjectOf);
}

/** Records the request's principal and asks the authorizer about its action; `done` goes on or fails with its refusal. */
function decide(auth: RequestAuth, principal: Principal | undefined, done: (err?: Error) => void): void {
  auth.principal = principal;
  try {
    auth.authorizer.authorize(principal, auth.action, auth.name);
  } catch (err) {
    done(err as Error);
    return;
  }
  done();
}

/** Who sent the request and the bindle it names (for the audit log). */
function auditSubjectOf(request: FastifyRequest): AuditSubject | undefined {
  const auth = decided(request);
  if (auth === undefined) return undefined;
  return {
    principal: auth.principal?.id ?? null,
    ...(auth.name === undefined ? {} : { name: auth.name }),
    ...(auth.version === undefined ? {} : { version: auth.version }),
  };
}

/** The action the auth hook decided a request performs (`admin` for a hard delete). */
export function requestAction(request: FastifyRequest): Action | undefined {
  return decided(request)?.action;
}

/** The id of the principal that sent the request; undefined when anonymous. */
export function requestPrincipal(request: FastifyRequest): string | undefined {
  return decided(request)?.principal?.id;
}

/**
 * Authorizes `action` on `name` for the request's principal, once a route knows the name (from
 * the body); throws as the authorizer does. The audit record then names it.
 */
export function authorizeBindleName(request: FastifyRequest, action: Action, name: string, version?: string): void {
  const auth = decided(request);
  if (auth === undefined) throw new Error('authorizeBindleName called on a request the auth hook did not see');
  auth.name = name;
  if (version !== undefined) auth.version = version;
  auth.authorizer.authorize(auth.principal, action, name);
}
