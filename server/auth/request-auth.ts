/**
 * The HTTP side of the auth seams: one onRequest hook that authenticates every API request
 * (passing the client's address, for FailedAttemptLimiter) and asks the authorizer whether the
 * principal may do what the request does to the bindle it names; `authorizeBindleName` asks
 * again once a route knows a name only from the body (invoice create). Every accepted write is
 * logged as an audit record with the principal's id. A too_many_requests refusal carries Retry-After.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseInvoicePath } from '../http/request-parsing.js';
import { actionForMethod, type Action, type Authenticator, type Authorizer, type Principal } from './types.js';

export interface RequestAuthOptions {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
}

/** What the hook decided for a request, kept for the route's second question and the audit record. */
interface RequestAuth {
  readonly principal: Principal | undefined;
  readonly action: Action;
  name: string | undefined;
  readonly authorizer: Authorizer;
}

const decided = new WeakMap<FastifyRequest, RequestAuth>();

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

/** Adds the auth and audit hooks to `api` (the `/v1` scope). */
export function registerRequestAuth(api: FastifyInstance, opts: RequestAuthOptions): void {
  api.addHook('onRequest', async (request) => {
    // A too_many_requests refusal carries its retry delay: the error handler sends Retry-After.
    const principal = await opts.authenticator.authenticate(request.headers.authorization, { address: request.ip });
    const action = actionForMethod(request.method);
    const name = action === 'read' ? undefined : nameOf(request);
    opts.authorizer.authorize(principal, action, name);
    decided.set(request, { principal, action, name, authorizer: opts.authorizer });
  });
  api.addHook('onResponse', async (request, reply) => {
    const auth = decided.get(request);
    if (auth === undefined || auth.action === 'read' || reply.statusCode >= 400) return;
    request.log.info(
      { audit: { principal: auth.principal?.id ?? null, action: auth.action, name: auth.name ?? null, status: reply.statusCode } },
      `audit: ${auth.principal?.id ?? 'anonymous'} ${auth.action} ${auth.name ?? request.url}`,
    );
  });
}

/**
 * Authorizes `action` on `name` for the request's principal, once a route knows the name (from
 * the body); throws as the authorizer does. The audit record then names it.
 */
export function authorizeBindleName(request: FastifyRequest, action: Action, name: string): void {
  const auth = decided.get(request);
  if (auth === undefined) throw new Error('authorizeBindleName called on a request the auth hook did not see');
  auth.authorizer.authorize(auth.principal, action, name);
  auth.name = name;
}
