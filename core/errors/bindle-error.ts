/**
 * The one closed set of error codes (generated from schema/error-code.schema.json), the one
 * table from code to HTTP status, and the error class every layer throws. The server's error
 * handler renders a BindleError; the client maps a reply's code back into one.
 */
import type { ErrorCode } from '../../schema/types.js';

export type { ErrorCode };

/** HTTP status for every error code. The server answers with it; the client reads it back. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  malformed_body: 400,
  invalid_invoice: 400,
  invalid_name: 400,
  invalid_version: 400,
  invalid_id: 400,
  invalid_query: 400,
  invalid_key_file: 400,
  invalid_config: 400,
  corrupt_key: 400,
  corrupt_signature: 400,
  unverified: 400,
  no_known_key: 400,
  unknown_signing_key: 400,
  duplicate_signature: 400,
  missing_role: 400,
  no_suitable_key: 400,
  group_cycle: 400,
  unknown_group: 400,
  no_choice: 400,
  parcel_not_on_invoice: 400,
  size_mismatch: 400,
  digest_mismatch: 400,
  manifest_invalid: 400,
  unsupported: 400,
  manifest_blob_unknown: 400,
  unauthenticated: 401,
  forbidden: 403,
  yanked: 403,
  not_found: 404,
  method_not_allowed: 405,
  not_acceptable: 406,
  request_timeout: 408,
  already_exists: 409,
  precondition_failed: 412,
  range_not_satisfiable: 416,
  expectation_failed: 417,
  payload_too_large: 413,
  headers_too_large: 431,
  unsupported_media_type: 415,
  yanked_create: 422,
  /** The bindle was hard-deleted (a tombstone holds its id): it cannot be re-created without an admin's leave. */
  deleted: 410,
  too_many_requests: 429,
  insufficient_storage: 507,
  /** A request feature the server does not implement (a transfer coding other than chunked). */
  not_implemented: 501,
  internal: 500,
  unavailable: 503,
};

export const ERROR_CODES = Object.keys(HTTP_STATUS) as ErrorCode[];

/** True when `value` is one of the closed set of error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(HTTP_STATUS, value);
}

/** An expected failure with a stable code and a message fit to show a user. */
export class BindleError extends Error {
  override readonly name = 'BindleError';
  readonly code: ErrorCode;
  /** Seconds after which the client may try again (answered as Retry-After), when known. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options);
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  /** The HTTP status this error is answered with. */
  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

/** Error codes of the operating system (and SQLite) that mean the disk or a quota is full. */
const OUT_OF_SPACE_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** True when `err`, or an error in its `cause` chain, says the disk or a quota is full. */
export function isOutOfSpace(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && OUT_OF_SPACE_CODES.has(code)) return true;
    current = current.cause;
  }
  return false;
}

export function isBindleError(err: unknown, code?: ErrorCode): err is BindleError {
  return err instanceof BindleError && (code === undefined || err.code === code);
}
