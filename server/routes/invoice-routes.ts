/**
 * `/_i` routes: create an invoice (TOML or JSON body; `?allow_deleted=true`, an admin's, re-creates
 * a hard-deleted one), and under `/_i/{name}/{version}` get, head and yank it (`DELETE`), or
 * hard-delete it (`DELETE ?hard=true[&reason=…]`, admin), or upload a batch of its parcels
 * (`POST`, multipart/form-data: ../http/parcel-batch.ts) or download one (`GET ?parcels=…`:
 * ../http/parcel-batch-download.ts); under `/_i/{name}/{version}@{sha256}`
 * upload, get and head a parcel (sent by ../http/parcel-reply.ts: Range, ETag, protective
 * headers). GET and HEAD answer conditional requests (../http/conditional.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseInvoiceOffThread } from '../../core/codec/invoice-codec.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { authorizeBindleName, requestAction, requestPrincipal } from '../auth/request-auth.js';
import type { BindleId } from '../../core/ids/bindle-id.js';
import type { BindleService } from '../service/bindle-service.js';
import { bodyFormat } from '../http/negotiation.js';
import { batchDownload, parseParcelList } from '../http/parcel-batch-download.js';
import { sendParcel } from '../http/parcel-reply.js';
import { sendDocument, sendStored } from '../http/reply.js';
import {
  bodyOf, contentLength, onlyParams, parseBool, parseInvoicePath, readBody, single, type ParcelPath, type QueryParams,
} from '../http/request-parsing.js';
import type { ParcelBatchReply } from '../../schema/index.js';
import type { ByteRange } from '../storage/parcel-store.js';

export interface InvoiceRouteOptions {
  service: BindleService;
  maxInvoiceBytes: number;
}

type WildcardRequest = FastifyRequest<{ Params: { '*': string }; Querystring: QueryParams }>;

function target(request: WildcardRequest): ParcelPath {
  return parseInvoicePath(request.params['*']);
}

function allowYanked(request: WildcardRequest): boolean {
  onlyParams(request.query, ['yanked']);
  return parseBool('yanked', single(request.query, 'yanked'), false);
}

/**
 * Stores the parcels of a multipart body POSTed to the invoice's path (../http/parcel-batch.ts),
 * each as a single upload of it would be (BindleService.putParcel); one the server already has
 * is read and dropped.
 */
async function putParcelBatch(service: BindleService, id: BindleId, request: WildcardRequest): Promise<ParcelBatchReply> {
  // Loaded with the first batch: a server that never gets one holds neither it nor its parser.
  const { isMultipartFormData, readParcelParts } = await import('../http/parcel-batch.js');
  const contentType = request.headers['content-type'];
  if (!isMultipartFormData(contentType)) {
    throw new BindleError(
      'unsupported_media_type',
      'POST parcels to /_i/{name}/{version} as multipart/form-data, one part per parcel named by its sha256; ' +
        'or one parcel to /_i/{name}/{version}@{sha256}, or an invoice to /_i',
    );
  }
  return readParcelParts(bodyOf(request), contentType, async (sha256, data) => {
    try {
      await service.putParcel(id, sha256, undefined, data);
      return 'created';
    } catch (err) {
      if (!isBindleError(err, 'already_exists')) throw err;
      data.resume();
      return 'existing';
    }
  });
}

export function invoiceRoutes(app: FastifyInstance, opts: InvoiceRouteOptions): void {
  const { service } = opts;

  app.post('/_i', async (request: FastifyRequest<{ Querystring: QueryParams }>, reply: FastifyReply) => {
    onlyParams(request.query, ['allow_deleted']);
    const allowDeleted = parseBool('allow_deleted', single(request.query, 'allow_deleted'), false);
    const format = bodyFormat(request.headers['content-type']);
    const declared = contentLength(request.headers['content-length']);
    if (declared !== undefined && declared > opts.maxInvoiceBytes) {
      throw new BindleError('payload_too_large', `invoice is ${declared} bytes, over this server's limit of ${opts.maxInvoiceBytes} bytes`);
    }
    const body = await readBody(bodyOf(request), opts.maxInvoiceBytes, 'invoice');
    if (body.length === 0) throw new BindleError('malformed_body', 'request body is empty: send an invoice');
    const invoice = await parseInvoiceOffThread(body, format);
    authorizeBindleName(request, allowDeleted ? 'admin' : 'push', invoice.bindle.name, invoice.bindle.version);
    const { stored, missing } = await service.createInvoice(invoice, { allowDeleted });
    const status = missing.length > 0 ? 202 : 201;
    return sendDocument(request, reply, status, missing.length > 0 ? { invoice: stored.invoice, missing } : { invoice: stored.invoice });
  });

  /** GET or HEAD of a parcel, with conditional requests and (GET) Range. */
  const getParcel = async (request: WildcardRequest, reply: FastifyReply, id: BindleId, sha256: string, yanked: boolean, head: boolean): Promise<FastifyReply> => {
    const info = await service.getParcel(id, sha256, yanked);
    const parcel = { sha256, size: info.size, mediaType: info.label.mediaType, read: (range?: ByteRange) => service.readParcel(sha256, info.size, range) };
    return sendParcel(request, reply, parcel, head);
  };

  /** GET or HEAD of several parcels of an invoice in one multipart body (../http/parcel-batch-download.ts). */
  const getParcelBatch = async (request: WildcardRequest, reply: FastifyReply, id: BindleId, head: boolean): Promise<FastifyReply> => {
    onlyParams(request.query, ['parcels', 'yanked']);
    const yanked = parseBool('yanked', single(request.query, 'yanked'), false);
    const list = single(request.query, 'parcels') ?? '';
    const found = await service.getParcels(id, parseParcelList(list), yanked);
    const batch = batchDownload(
      found.map(({ label: { sha256, mediaType }, size }) => ({ sha256, size, mediaType, read: () => service.readParcel(sha256, size) })),
    );
    reply.code(200).headers(batch.headers);
    return head ? reply.send() : reply.send(batch.body());
  };

  /**
   * GET or HEAD of an invoice or a parcel, with conditional requests. An invoice is sent from
   * the one reaction on its look-up (BindleService.withInvoice), which hands a failure to the
   * error handler as Fastify would, and Fastify gets no promise to wait on (an async handler's
   * would cost more promises, and a reply returned from one two more turns): every invoice GET
   * takes this path.
   */
  const get = (request: WildcardRequest, reply: FastifyReply, head: boolean): Promise<FastifyReply> | undefined => {
    try {
      const { id, sha256 } = target(request);
      if (sha256 === undefined && request.query.parcels !== undefined) return getParcelBatch(request, reply, id, head);
      const yanked = allowYanked(request);
      if (sha256 !== undefined) return getParcel(request, reply, id, sha256, yanked, head);
      service.withInvoice(
        id,
        yanked,
        (stored) => {
          sendStored(request, reply, stored, head);
        },
        (err) => {
          reply.send(err);
        },
      );
      return undefined;
    } catch (err) {
      // Refused a turn later, as an async handler's throw is: by then Node has read the whole
      // request, so the error reply keeps the connection open (../http/error-handler.ts closes
      // it while a request is unread).
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  };
  app.head('/_i/*', (request: WildcardRequest, reply: FastifyReply) => get(request, reply, true));
  app.get('/_i/*', (request: WildcardRequest, reply: FastifyReply) => get(request, reply, false));

  app.post('/_i/*', async (request: WildcardRequest, reply: FastifyReply) => {
    onlyParams(request.query, []);
    const { id, sha256 } = target(request);
    if (sha256 === undefined) return sendDocument(request, reply, 200, await putParcelBatch(service, id, request));
    await service.putParcel(id, sha256, contentLength(request.headers['content-length']), bodyOf(request));
    return sendDocument(request, reply, 200, { message: 'parcel created' });
  });

  app.delete('/_i/*', async (request: WildcardRequest, reply: FastifyReply) => {
    onlyParams(request.query, ['hard', 'reason']);
    const { id, sha256 } = target(request);
    if (sha256 !== undefined) throw new BindleError('method_not_allowed', 'parcels cannot be deleted; yank the invoice instead');
    if (parseBool('hard', single(request.query, 'hard'), false)) {
      // The auth hook decided the admin action from the same parameter; never delete on less.
      if (requestAction(request) !== 'admin') throw new BindleError('internal', 'a hard delete was not authorized as admin');
      await service.deleteInvoice(id, requestPrincipal(request) ?? '', single(request.query, 'reason') ?? '');
      return sendDocument(request, reply, 200, { message: 'invoice deleted' });
    }
    if (single(request.query, 'reason') !== undefined) throw new BindleError('bad_request', 'reason is only for a hard delete (hard=true)');
    await service.yank(id);
    return sendDocument(request, reply, 200, { message: 'invoice yanked' });
  });
}
