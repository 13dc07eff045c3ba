/**
 * The error handler of the `/v2` scope: renders any BindleError as the distribution-spec error
 * envelope `{"errors":[{"code","message","detail"}]}` with the status of core/errors. The OCI code
 * comes from one table, by the Bindle code and the kind of endpoint (route context decides
 * BLOB_UNKNOWN vs MANIFEST_UNKNOWN vs NAME_UNKNOWN); `detail.code` keeps the Bindle code.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BindleError, type ErrorCode } from '../../core/errors/bindle-error.js';
import { carriesCredentials } from '../auth/types.js';
import { recordError } from '../http/error-handler.js';
import type { OciEndpoint } from './oci-path.js';

/**
 * The distribution-spec error codes this registry answers with, and the CNCF registry's
 * PAGINATION_NUMBER_INVALID for a tag list's or the catalog's bad `n` or `last` and UNAVAILABLE
 * for a 503 (storage unreachable, or an upload to send again).
 */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'PAGINATION_NUMBER_INVALID'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNAVAILABLE'
  | 'UNKNOWN';

/** What `not_found` means on each kind of endpoint. */
const NOT_FOUND: Readonly<Record<OciEndpoint, OciErrorCode>> = {
  base: 'NAME_UNKNOWN',
  manifests: 'MANIFEST_UNKNOWN',
  blobs: 'BLOB_UNKNOWN',
  tags: 'NAME_UNKNOWN',
  catalog: 'NAME_UNKNOWN',
  referrers: 'MANIFEST_UNKNOWN',
  uploads: 'BLOB_UPLOAD_UNKNOWN',
};

/** The one table: OCI code per Bindle code; codes not listed are UNSUPPORTED (4xx) or UNKNOWN (5xx). */
const OCI_CODES: Partial<Readonly<Record<ErrorCode, OciErrorCode | ((endpoint: OciEndpoint) => OciErrorCode)>>> = {
  not_found: (endpoint) => NOT_FOUND[endpoint],
  yanked: 'MANIFEST_UNKNOWN',
  invalid_name: 'NAME_INVALID',
  manifest_invalid: 'MANIFEST_INVALID',
  invalid_invoice: 'MANIFEST_INVALID',
  malformed_body: 'MANIFEST_INVALID',
  unverified: 'MANIFEST_INVALID',
  no_known_key: 'MANIFEST_INVALID',
  missing_role: 'MANIFEST_INVALID',
  no_suitable_key: 'MANIFEST_INVALID',
  unknown_signing_key: 'MANIFEST_INVALID',
  corrupt_signature: 'MANIFEST_INVALID',
  corrupt_key: 'MANIFEST_INVALID',
  duplicate_signature: 'MANIFEST_INVALID',
  invalid_version: 'MANIFEST_INVALID',
  group_cycle: 'MANIFEST_INVALID',
  unknown_group: 'MANIFEST_INVALID',
  yanked_create: 'MANIFEST_INVALID',
  manifest_blob_unknown: 'MANIFEST_BLOB_UNKNOWN',
  already_exists: 'DENIED',
  unsupported: 'UNSUPPORTED',
  method_not_allowed: 'UNSUPPORTED',
  digest_mismatch: 'DIGEST_INVALID',
  size_mismatch: 'SIZE_INVALID',
  payload_too_large: 'SIZE_INVALID',
  range_not_satisfiable: (endpoint) => (endpoint === 'uploads' ? 'BLOB_UPLOAD_INVALID' : 'UNSUPPORTED'),
  bad_request: (endpoint) => (endpoint === 'uploads' ? 'BLOB_UPLOAD_INVALID' : endpoint === 'blobs' || endpoint === 'referrers' ? 'DIGEST_INVALID' : 'UNSUPPORTED'),
  unauthenticated: 'UNAUTHORIZED',
  forbidden: 'DENIED',
  too_many_requests: 'TOOMANYREQUESTS',
  unavailable: 'UNAVAILABLE',
  not_implemented: 'UNSUPPORTED',
  invalid_query: (endpoint) => (endpoint === 'tags' || endpoint === 'catalog' ? 'PAGINATION_NUMBER_INVALID' : 'UNSUPPORTED'),
};

/** The OCI code for a Bindle code on an endpoint. */
export function ociErrorCode(code: ErrorCode, status: number, endpoint: OciEndpoint): OciErrorCode {
  const entry = OCI_CODES[code];
  if (entry === undefined) return status >= 500 ? 'UNKNOWN' : 'UNSUPPORTED';
  return typeof entry === 'function' ? entry(endpoint) : entry;
}

/** The challenge OCI clients (Docker, containers/image, ORAS) answer with Basic credentials. */
export const OCI_CHALLENGE = 'Basic realm="bindle"';

declare module 'fastify' {
  interface FastifyRequest {
    /** The kind of OCI endpoint the request addresses, once its route has parsed the path (null before, and outside `/v2`). */
    ociEndpoint: OciEndpoint | null;
  }
}

/** Records which kind of endpoint a request addresses, once its route has parsed the path. */
export function setEndpoint(request: FastifyRequest, endpoint: OciEndpoint): void {
  request.ociEndpoint = endpoint;
}

function renderOciError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const error = recordError(err, request, reply);
  // An anonymous client refused a write is asked for credentials: OCI clients send them only after a 401 challenge.
  const anonymousRefusal = error.code === 'forbidden' && !carriesCredentials(request.headers.authorization);
  const challenge = error.code === 'unauthenticated' || anonymousRefusal;
  if (challenge) reply.header('www-authenticate', OCI_CHALLENGE);
  const code = challenge ? 'UNAUTHORIZED' : ociErrorCode(error.code, error.status, request.ociEndpoint ?? 'base');
  const body = { errors: [{ code, message: error.message, detail: { code: error.code } }] };
  const status = challenge ? 401 : error.status;
  if (request.method === 'HEAD') return reply.code(status).type('application/json').send();
  return reply.code(status).type('application/json').send(JSON.stringify(body));
}

/** The API version header OCI clients check on every reply of `/v2`, errors included. */
function setApiVersion(reply: FastifyReply): void {
  reply.header('docker-distribution-api-version', 'registry/2.0');
}

/**
 * An error Fastify met under `/v2` before any route ran (a path that does not decode), answered
 * as the OCI API answers its own: the envelope and the version header.
 */
export function ociFrameworkError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  setApiVersion(reply);
  void renderOciError(err, request, reply);
}

/**
 * Makes `scope` (the `/v2` plugin) answer every error and unknown route with the OCI envelope,
 * and every reply (errors too) with the API version header clients check.
 */
export function registerOciErrorHandling(scope: FastifyInstance): void {
  // A request decoration rather than a WeakMap keyed by request (cheaper on every request).
  scope.decorateRequest('ociEndpoint', null);
  scope.addHook('onRequest', async (_request, reply) => {
    setApiVersion(reply);
  });
  scope.setErrorHandler((err: FastifyError, request, reply) => renderOciError(err, request, reply));
  scope.setNotFoundHandler((request, reply) => {
    return renderOciError(new BindleError('not_found', `no OCI endpoint for ${request.method} ${request.url}`), request, reply);
  });
}
