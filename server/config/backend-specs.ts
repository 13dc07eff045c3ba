/**
 * Storage backend descriptions: parses the `--index` and `--parcels` values (and the same forms
 * given to `bindle-server migrate`) into typed specs, validating them once. Opening a spec is
 * server/storage/backends.ts's job; this module imports no storage code.
 *
 *   index:   sqlite:<path>  |  postgres://…  |  postgresql://…
 *   parcels: file:<dir>     |  s3://<bucket>[/<prefix>]?endpoint=<url>&region=<r>&forcePathStyle=true&requestDeadline=<duration>&partMemory=<size>
 */
import { resolve } from 'node:path';
import { BindleError } from '../../core/errors/bindle-error.js';
import { MAX_BYTE_SIZE, parseByteSize, SIZE_RULE } from './byte-sizes.js';
import { DURATION_RULE, MAX_DURATION_MS, parseDuration } from './durations.js';

/** Where the invoice index lives. `path` is absolute; `url` is the connection URL as given. */
export type IndexSpec =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'postgres'; readonly url: string };

/**
 * Where parcels live. `directory` is the data directory (parcels go to `<directory>/parcels`).
 * For S3, `prefix` has no leading or trailing slash ('' for the bucket root), `endpoint` is an
 * http(s) URL for an S3-compatible service, and credentials come from the standard `AWS_*`
 * environment variables, never from the spec. `requestDeadlineMs`, when given, replaces the S3
 * store's deadline on a request, retries included (REQUEST_DEADLINE_MS in
 * server/storage/s3-parcel-store.ts), for a link to the service too slow for the default.
 * `partMemoryBytes`, when given, replaces what the store's upload parts may hold in memory
 * together (PART_MEMORY_CAP_BYTES in server/storage/part-spool.ts; 0 sends every part through the
 * spool), for a replica with more (or less) memory to give them.
 */
export type ParcelsSpec =
  | { readonly kind: 'file'; readonly directory: string }
  | {
      readonly kind: 's3';
      readonly bucket: string;
      readonly prefix: string;
      readonly endpoint?: string;
      readonly region: string;
      readonly forcePathStyle: boolean;
      readonly requestDeadlineMs?: number;
      /** What the store's upload parts may hold in memory together (PartSpool's cap), when given. */
      readonly partMemoryBytes?: number;
    };

/** The region used when neither `region=` nor AWS_REGION / AWS_DEFAULT_REGION is set. */
export const DEFAULT_S3_REGION = 'us-east-1';

const S3_PARAMS = ['endpoint', 'region', 'forcePathStyle', 'requestDeadline', 'partMemory'] as const;
/** S3 bucket naming rules (lowercase letters, digits, dots, hyphens; 3–63 characters). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function invalid(message: string): BindleError {
  return new BindleError('invalid_config', message);
}

/** The URL text with any password replaced, for error messages and logs. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^@/?#]*@/i, '$1:***@');
}

/** A one-line description of an index spec that never contains a password. */
export function describeIndex(spec: IndexSpec): string {
  return spec.kind === 'sqlite' ? `sqlite:${spec.path}` : redactUrl(spec.url);
}

/** A one-line description of a parcels spec. */
export function describeParcels(spec: ParcelsSpec): string {
  if (spec.kind === 'file') return `file:${spec.directory}`;
  const where = spec.prefix === '' ? spec.bucket : `${spec.bucket}/${spec.prefix}`;
  const endpoint = spec.endpoint === undefined ? '' : `, endpoint ${spec.endpoint}`;
  const deadline = spec.requestDeadlineMs === undefined ? '' : `, request deadline ${spec.requestDeadlineMs} ms`;
  const memory = spec.partMemoryBytes === undefined ? '' : `, part memory ${spec.partMemoryBytes} bytes`;
  return `s3://${where} (region ${spec.region}${endpoint}${deadline}${memory})`;
}

/**
 * Parses an index spec. `source` names where the text came from (for errors); relative sqlite
 * paths are resolved against `cwd`.
 */
export function parseIndexSpec(text: string, source: string, cwd: string): IndexSpec {
  const trimmed = text.trim();
  if (/^sqlite:/i.test(trimmed)) {
    const path = trimmed.slice('sqlite:'.length);
    if (path.trim() === '') throw invalid(`${source}: "sqlite:" needs a file path, e.g. sqlite:./bindle-data/index.sqlite`);
    return { kind: 'sqlite', path: resolve(cwd, path) };
  }
  if (/^postgres(ql)?:\/\//i.test(trimmed)) {
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      throw invalid(`${source}: "${redactUrl(trimmed)}" is not a valid PostgreSQL URL`);
    }
    if (url.hostname === '' && !url.searchParams.has('host')) {
      throw invalid(`${source}: "${redactUrl(trimmed)}" names no host; use postgres://user:password@host:5432/database`);
    }
    return { kind: 'postgres', url: trimmed };
  }
  throw invalid(
    `${source}: "${redactUrl(trimmed)}" is not an index; use sqlite:<path> or postgres://user:password@host:5432/database`,
  );
}

/**
 * Parses a parcels spec (see ParcelsSpec). `env` supplies AWS_REGION / AWS_DEFAULT_REGION when
 * the URL has no `region=`; relative file paths are resolved against `cwd`.
 */
export function parseParcelsSpec(text: string, source: string, cwd: string, env: NodeJS.ProcessEnv): ParcelsSpec {
  const trimmed = text.trim();
  if (/^file:/i.test(trimmed)) {
    const dir = trimmed.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
    if (dir.trim() === '') throw invalid(`${source}: "file:" needs a directory, e.g. file:./bindle-data`);
    return { kind: 'file', directory: resolve(cwd, dir) };
  }
  if (/^s3:\/\//i.test(trimmed)) return parseS3(trimmed, source, env);
  throw invalid(
    `${source}: "${trimmed}" is not a parcel store; use file:<directory> or ` +
      's3://<bucket>[/<prefix>]?endpoint=<url>&region=<region>&forcePathStyle=true&requestDeadline=<duration>&partMemory=<size>',
  );
}

function parseS3(text: string, source: string, env: NodeJS.ProcessEnv): ParcelsSpec {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`${source}: "${redactUrl(text)}" is not a valid s3:// URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw invalid(`${source}: put no credentials in the s3:// URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead`);
  }
  const bucket = url.hostname;
  if (!BUCKET.test(bucket) || url.port !== '') {
    throw invalid(`${source}: "${url.host}" is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)`);
  }
  let prefix: string;
  try {
    prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
  } catch {
    throw invalid(`${source}: the key prefix "${url.pathname}" is not valid percent-encoding`);
  }
  if (prefix !== '' && prefix.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw invalid(`${source}: the key prefix "${prefix}" must not contain empty, "." or ".." segments`);
  }
  for (const key of url.searchParams.keys()) {
    if (!(S3_PARAMS as readonly string[]).includes(key)) {
      throw invalid(`${source}: unknown s3:// parameter "${key}" (known: ${S3_PARAMS.join(', ')})`);
    }
  }
  const once = (key: (typeof S3_PARAMS)[number]): string | undefined => {
    const values = url.searchParams.getAll(key);
    if (values.length > 1) throw invalid(`${source}: the s3:// parameter "${key}" is given ${values.length} times`);
    const value = values[0];
    if (value !== undefined && value.trim() === '') throw invalid(`${source}: the s3:// parameter "${key}" is empty`);
    return value;
  };
  const endpoint = once('endpoint');
  if (endpoint !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(endpoint);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw invalid(`${source}: endpoint "${endpoint}" must be an http or https URL, e.g. http://127.0.0.1:7480`);
    }
  }
  const styleText = once('forcePathStyle');
  let forcePathStyle = false;
  if (styleText !== undefined) {
    if (styleText !== 'true' && styleText !== 'false') {
      throw invalid(`${source}: forcePathStyle must be true or false, got "${styleText}"`);
    }
    forcePathStyle = styleText === 'true';
  }
  const region = once('region') ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? DEFAULT_S3_REGION;
  const deadlineText = once('requestDeadline');
  let requestDeadlineMs: number | undefined;
  if (deadlineText !== undefined) {
    requestDeadlineMs = parseDuration(deadlineText);
    if (requestDeadlineMs === undefined) throw invalid(`${source}: requestDeadline "${deadlineText}" is not a duration; ${DURATION_RULE}`);
    if (requestDeadlineMs === 0 || requestDeadlineMs > MAX_DURATION_MS) {
      throw invalid(`${source}: requestDeadline must be longer than 0 ms and at most ${MAX_DURATION_MS} ms, got ${requestDeadlineMs} ms`);
    }
  }
  const memoryText = once('partMemory');
  let partMemoryBytes: number | undefined;
  if (memoryText !== undefined) {
    partMemoryBytes = parseByteSize(memoryText);
    if (partMemoryBytes === undefined) throw invalid(`${source}: partMemory "${memoryText}" is not a size; ${SIZE_RULE}`);
    if (partMemoryBytes > MAX_BYTE_SIZE) throw invalid(`${source}: partMemory "${memoryText}" is larger than the maximum of ${MAX_BYTE_SIZE} bytes`);
  }
  return {
    kind: 's3',
    bucket,
    prefix,
    ...(endpoint === undefined ? {} : { endpoint }),
    region,
    forcePathStyle,
    ...(requestDeadlineMs === undefined ? {} : { requestDeadlineMs }),
    ...(partMemoryBytes === undefined ? {} : { partMemoryBytes }),
  };
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === undefined || text.trim() === '' ? undefined : text.trim();
}
