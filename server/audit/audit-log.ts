/**
 * The audit log: every write the API is asked for — invoice create, parcel upload, yank, hard
 * delete, and any other write — as one structured log line with a fixed `audit: true` field,
 * the principal, the action, the bindle (`name/version`), the parcel, the outcome (success,
 * denied, failed) and the HTTP status, whether it succeeded or not. Operators filter the
 * server's JSON log on `audit`. Records are `info` lines written at every log level but
 * `silent`: a server at `--log-level warn`, quiet about requests, still keeps its audit trail.
 * The admin commands (gc, fsck --repair) write the same records.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { levels } from 'pino';
import { parseInvoicePath } from '../http/request-parsing.js';

/** What a write did, in the operator's words. */
export type AuditAction = 'create' | 'upload' | 'yank' | 'delete' | 'gc-remove' | 'fsck-remove' | 'write';

/** success: 2xx/3xx; denied: 401, 403 or 429 (authentication or authorization refused it); failed: any other error. */
export type AuditOutcome = 'success' | 'denied' | 'failed';

/** One audit record (the fields of its log line besides `audit: true` and the message). */
export interface AuditRecord {
  /** The principal's id; null when anonymous or not authenticated. */
  principal: string | null;
  action: AuditAction;
  /** `name/version`, or the name alone when the version is unknown; null when unknown. */
  bindle: string | null;
  /** The parcel a single upload names; null for a batch upload (POST of parcels to the invoice's path) and other writes. */
  parcel: string | null;
  outcome: AuditOutcome;
  /** The HTTP status answered (0 for the admin commands). */
  status: number;
}

/** Who asked for a request and on which bindle, as far as authentication and the route found out. */
export interface AuditSubject {
  principal: string | null;
  name?: string;
  version?: string;
}

/** The minimal logger an audit record is written to (a pino or Fastify logger). */
export interface AuditLogger {
  info(fields: object, message: string): void;
}

export function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'success';
  return status === 401 || status === 403 || status === 429 ? 'denied' : 'failed';
}

/** Writes one audit record as one log line; `reqId`, when given, first among its fields. */
export function writeAudit(log: AuditLogger, record: AuditRecord, reqId?: string): void {
  const target = [record.bindle, record.parcel].filter((x) => x !== null).join('@');
  const words = [record.principal ?? 'anonymous', record.action, target, record.outcome].filter((w) => w !== '');
  const fields = { audit: true, ...record };
  log.info(reqId === undefined ? fields : { reqId, ...fields }, `audit: ${words.join(' ')}`);
}

function auditActionOf(request: FastifyRequest): AuditAction {
  const query = request.query as Record<string, unknown> | undefined;
  const path = request.routeOptions.url ?? '';
  if (request.method === 'DELETE' && path.startsWith('/v1/_i/')) return query?.hard === 'true' ? 'delete' : 'yank';
  if (request.method === 'POST' && path === '/v1/_i') return 'create';
  // One parcel (`@{sha256}`), or a batch of them.
  if (request.method === 'POST' && path.startsWith('/v1/_i/')) return 'upload';
  return 'write';
}

/** The bindle id and parcel a `/_i/...` request names, as far as its path parses. */
function targetOf(request: FastifyRequest): { name?: string; version?: string; parcel: string | null } {
  const params = request.params as Record<string, string | undefined> | undefined;
  const wildcard = params?.['*'];
  if (wildcard === undefined || !(request.routeOptions.url ?? '').startsWith('/v1/_i/')) return { parcel: null };
  try {
    const { id, sha256 } = parseInvoicePath(wildcard);
    return { name: id.name, version: id.version, parcel: sha256 ?? null };
  } catch {
    return { parcel: null };
  }
}

const READ_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Adds the hook that writes an audit record for every request to `api` whose method writes
 * (anything but GET, HEAD, OPTIONS), once it is answered, at every log level but `silent`
 * (auditSinkOf). `subjectOf` tells who sent it and which bindle a route found in the body
 * (invoice create).
 */
export function registerAuditLog(api: FastifyInstance, subjectOf: (request: FastifyRequest) => AuditSubject | undefined): void {
  const sink = auditSinkOf(api.log);
  // Logging is off: nothing would be written.
  if (sink === undefined) return;
  const audit = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    if (!READ_METHODS.has(request.method)) auditRequest(sink, request, reply, subjectOf);
    done();
  };
  // Only the routes of write methods get the hook (a route-level one): reads pay nothing for it.
  // Requests no route matched are answered outside this scope, without its hooks, as before.
  api.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.every((method) => READ_METHODS.has(method))) return;
    const existing = route.onResponse === undefined ? [] : Array.isArray(route.onResponse) ? route.onResponse : [route.onResponse];
    route.onResponse = [...existing, audit];
  });
}

/** pino's number for `info`: a logger at this level or a more verbose one writes audit records as they are. */
const INFO_LEVEL = levels.values.info ?? 30;

/** Writes one request's audit record. */
export type AuditSink = (request: Pick<FastifyRequest, 'id' | 'log'>, record: AuditRecord) => void;

/**
 * How the audit records of requests logged by `log` (the app's logger, whose level is set once
 * at start) are written: through each request's own logger, whose request-id binding the line
 * carries, when `log` writes `info` lines; at a quieter level, through one child of `log` that
 * does, with the request id written as the binding would be (one child for the app: making one
 * per request, with a level of its own, cost ~25 µs); undefined when logging is off (`silent`).
 */
export function auditSinkOf(log: FastifyBaseLogger): AuditSink | undefined {
  if (log.level === 'silent') return undefined;
  const level = levels.values[log.level];
  if (level !== undefined && level <= INFO_LEVEL) return (request, record) => writeAudit(request.log, record);
  const audit = log.child({}, { level: 'info' });
  return (request, record) => writeAudit(audit, record, request.id);
}

/** Writes the audit record of an answered write request to `sink`. */
function auditRequest(
  sink: AuditSink,
  request: FastifyRequest,
  reply: FastifyReply,
  subjectOf: (request: FastifyRequest) => AuditSubject | undefined,
): void {
  const subject = subjectOf(request);
  const target = targetOf(request);
  const name = target.name ?? subject?.name;
  const version = target.version ?? subject?.version;
  sink(request, {
    principal: subject?.principal ?? null,
    action: auditActionOf(request),
    bindle: name === undefined ? null : version === undefined ? name : `${name}/${version}`,
    parcel: target.parcel,
    outcome: outcomeOf(reply.statusCode),
    status: reply.statusCode,
  });
}
