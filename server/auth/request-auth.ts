/**
 * The HTTP side of the auth seams: one onRequest hook that authenticates every API request
 * (passing the client's address, for FailedAttemptLimiter) and asks the authorizer whether the
 * principal may do what the request does. A too_many_requests refusal carries Retry-After.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TooManyRequestsError } from './failed-attempt-limiter.js';
import { actionForMethod, type Authenticator, type Authorizer, type Principal } from './types.js';

export interface RequestAuthOptions {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
}

async function authenticate(request: FastifyRequest, reply: FastifyReply, authenticator: Authenticator): Promise<Principal | undefined> {
  try {
    return await authenticator.authenticate(request.headers.authorization, { address: request.ip });
  } catch (err) {
    if (err instanceof TooManyRequestsError) reply.header('retry-after', String(err.retryAfterSeconds));
    throw err;
  }
}

/** Adds the auth hook to `api` (the `/v1` scope). */
export function registerRequestAuth(api: FastifyInstance, opts: RequestAuthOptions): void {
  api.addHook('onRequest', async (request, reply) => {
    const principal = await authenticate(request, reply, opts.authenticator);
    opts.authorizer.authorize(principal, actionForMethod(request.method));
  });
}
