/**
 * Reading what a request names: `{name}/{version}` and `{name}/{version}@{sha256}` paths (split
 * at the LAST `/` and at `@`), query strings with closed parameter sets, boolean flags, and
 * size-limited bodies.
 */
import { Readable } from 'node:stream';
import { readAtMost } from '../../core/bounded-read.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { parseId, type BindleId } from '../../core/ids/bindle-id.js';

export interface ParcelPath {
  id: BindleId;
  sha256: string | undefined;
}

/** Parses the path after `/_i/` (already percent-decoded by the router). */
export function parseInvoicePath(path: string): ParcelPath {
  // indexOf first: it is a fast builtin, lastIndexOf a runtime call, and an invoice path has no `@`.
  if (path.indexOf('@') < 0) return { id: parseId(path), sha256: undefined };
  const at = path.lastIndexOf('@');
  const sha256 = path.slice(at + 1);
  if (sha256 === '') throw new BindleError('invalid_id', `invalid parcel path ${JSON.stringify(path)}: missing sha256 after "@"`);
  return { id: parseId(path.slice(0, at)), sha256 };
}

export type QueryParams = Record<string, string | string[] | undefined>;

/**
 * A request's body as a stream: the one the catch-all content-type parser passed on, or an empty
 * one when Fastify parsed none (a request without a body, or an empty one without Content-Type).
 */
export function bodyOf(request: { readonly body: unknown }): Readable {
  return request.body instanceof Readable ? request.body : Readable.from([]);
}

/** Returns the single value of `name` (throws on repeats); undefined when absent. */
export function single(params: QueryParams, name: string): string | undefined {
  const value = params[name];
  if (Array.isArray(value)) throw new BindleError('invalid_query', `query parameter "${name}" given more than once`);
  return value;
}

/** Throws invalid_query naming any parameter not in `allowed`. */
export function onlyParams(params: QueryParams, allowed: readonly string[]): void {
  // Looked through before any list is built: this runs on every GET, whose query is mostly empty.
  for (const name in params) {
    if (!allowed.includes(name)) throw unknownParams(params, allowed);
  }
}

function unknownParams(params: QueryParams, allowed: readonly string[]): BindleError {
  const unknown = Object.keys(params).filter((k) => !allowed.includes(k));
  return new BindleError(
    'invalid_query',
    `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => JSON.stringify(u)).join(', ')} (allowed: ${allowed.join(', ')})`,
  );
}

export function parseBool(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  const v = value.toLowerCase();
  if (v === 'true' || v === '1' || v === '') return true;
  if (v === 'false' || v === '0') return false;
  throw new BindleError('invalid_query', `query parameter "${name}" must be true or false (got ${JSON.stringify(value)})`);
}

export function parseInteger(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new BindleError('invalid_query', `query parameter "${name}" must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`);
  }
  return Number(value);
}

/** The declared Content-Length, or undefined when absent/chunked; malformed → bad_request. */
export function contentLength(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header)) throw new BindleError('bad_request', `invalid Content-Length ${JSON.stringify(header)}`);
  return Number(header);
}

/** Reads a whole body of at most `limit` bytes; payload_too_large as soon as it is exceeded. */
export async function readBody(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const read = await readAtMost(stream, limit);
  if (read.over) throw new BindleError('payload_too_large', `${what} is larger than this server's limit of ${limit} bytes`);
  return read.bytes;
}

/** A parsed `Range: bytes=…` header for a resource of `size` bytes. */
export type RangeRequest = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/** Parses a single byte range (RFC 9110); several ranges or other units are ignored (full body). */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return { kind: 'none' };
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return { kind: 'none' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: 'none' };
  return { kind: 'range', start, end };
}
