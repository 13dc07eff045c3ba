/**
 * `/_q` (search, PROTOCOL.md §4; replies streamed from cached per-invoice fragments,
 * ../http/query-reply.ts), `/_r/missing/{name}/{version}` and `/bindle-keys`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BindleError } from '../../core/errors/bindle-error.js';
import { parseId } from '../../core/ids/bindle-id.js';
import { parseRole } from '../../core/signing/roles.js';
import type { BindleService } from '../service/bindle-service.js';
import { queryTerms, type InvoiceQuery } from '../storage/invoice-index.js';
import { sendDocument, sendDocumentHead } from '../http/reply.js';
import { QueryReplies } from '../http/query-reply.js';
import { onlyParams, parseBool, parseInteger, single, type QueryParams } from '../http/request-parsing.js';

const QUERY_PARAMS = ['q', 'query', 'v', 'version', 'o', 'offset', 'l', 'limit', 'strict', 'yanked'] as const;
/** Bounds on a search, so that no query can cost the index an unbounded expression. */
export const MAX_QUERY_TERMS = 32;
export const MAX_QUERY_CHARS = 1024;
export const MAX_VERSION_RANGE_CHARS = 256;

function either(params: QueryParams, short: string, long: string): string | undefined {
  const a = single(params, short);
  const b = single(params, long);
  if (a !== undefined && b !== undefined) {
    throw new BindleError('invalid_query', `give either "${short}" or "${long}", not both`);
  }
  return a ?? b;
}

/** Parses `/_q` parameters into an index query (unknown or malformed → invalid_query). */
export function parseQuery(params: QueryParams): InvoiceQuery {
  onlyParams(params, QUERY_PARAMS);
  const version = either(params, 'v', 'version');
  const query = either(params, 'q', 'query') ?? '';
  if (query.length > MAX_QUERY_CHARS) {
    throw new BindleError('invalid_query', `query "q" is ${query.length} characters long: at most ${MAX_QUERY_CHARS} are allowed`);
  }
  const terms = queryTerms(query).length;
  if (terms > MAX_QUERY_TERMS) {
    throw new BindleError('invalid_query', `query "q" has ${terms} terms: at most ${MAX_QUERY_TERMS} are allowed`);
  }
  if (version !== undefined && version.length > MAX_VERSION_RANGE_CHARS) {
    throw new BindleError('invalid_query', `version "v" is ${version.length} characters long: at most ${MAX_VERSION_RANGE_CHARS} are allowed`);
  }
  return {
    query,
    ...(version !== undefined && version !== '' ? { version } : {}),
    offset: parseInteger('offset', either(params, 'o', 'offset'), 0, 0, Number.MAX_SAFE_INTEGER),
    limit: parseInteger('limit', either(params, 'l', 'limit'), 50, 1, 255),
    strict: parseBool('strict', single(params, 'strict'), false),
    yanked: parseBool('yanked', single(params, 'yanked'), false),
  };
}

export function queryRoutes(app: FastifyInstance, opts: { service: BindleService }): void {
  const { service } = opts;
  type Q = FastifyRequest<{ Querystring: QueryParams }>;
  const replies = new QueryReplies();

  const search = async (request: Q, reply: FastifyReply, head: boolean): Promise<FastifyReply> => {
    const query = parseQuery(request.query);
    return replies.send(request, reply, () => service.query(query), head);
  };
  app.head('/_q', (request: Q, reply) => search(request, reply, true));
  app.get('/_q', (request: Q, reply) => search(request, reply, false));

  app.get('/_r/missing/*', async (request: FastifyRequest<{ Params: { '*': string }; Querystring: QueryParams }>, reply) => {
    onlyParams(request.query, []);
    const missing = await service.missing(parseId(request.params['*']));
    return sendDocument(request, reply, 200, { missing });
  });

  const keys = (request: Q, reply: FastifyReply, head: boolean): FastifyReply => {
    onlyParams(request.query, ['roles']);
    const raw = single(request.query, 'roles');
    const roles = raw === undefined || raw.trim() === '' ? undefined : raw.split(',').map((r) => {
      try {
        return parseRole(r);
      } catch {
        throw new BindleError('invalid_query', `invalid role ${JSON.stringify(r.trim())} in "roles": use creator, approver, host or proxy`);
      }
    });
    const ring = service.keys(roles);
    return head ? sendDocumentHead(request, reply, 200, ring) : sendDocument(request, reply, 200, ring);
  };
  app.head('/bindle-keys', (request: Q, reply) => keys(request, reply, true));
  app.get('/bindle-keys', (request: Q, reply) => keys(request, reply, false));
}
