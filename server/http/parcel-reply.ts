/**
 * Sending a parcel: GET and HEAD of a stored parcel with its protective headers
 * (./parcel-headers.ts), a strong ETag (its sha256), conditional requests (./conditional.ts) and
 * Range (206/416). One function for every route that serves parcel bytes (the Bindle `/_i`
 * routes, and any other API over the same parcels): small parcels go out from memory in one
 * write, big ones are streamed from the store.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { ParcelBody } from '../storage/parcel-reader.js';
import type { ByteRange } from '../storage/parcel-store.js';
import { evaluatePreconditions, rangeApplies } from './conditional.js';
import { parcelHeaders } from './parcel-headers.js';
import { parseRange, type RangeRequest } from './request-parsing.js';

/** The parcel to send: its digest, stored size and media type, and how to read its bytes. */
export interface ServedParcel {
  sha256: string;
  size: number;
  mediaType: string;
  /** The bytes, or those of a range (ends inclusive, within `size`); bytes in memory may come without a promise. */
  read(range?: ByteRange): ParcelBody | Promise<ParcelBody>;
}

/** Headers per media type (a registry serves few types, so this stays small); bounded anyway. */
const HEADERS = new Map<string, Readonly<Record<string, string>>>();
const MAX_HEADER_SETS = 256;

/**
 * The headers of every answer with a parcel's bytes besides its entity tag, Date and the
 * lengths: its type and protective headers, and Accept-Ranges. Set by sendParcel and by
 * ./fast-lane.ts.
 */
export function parcelReplyHeaders(mediaType: string): Readonly<Record<string, string>> {
  let headers = HEADERS.get(mediaType);
  if (headers === undefined) {
    if (HEADERS.size >= MAX_HEADER_SETS) HEADERS.clear();
    headers = Object.freeze({ ...parcelHeaders(mediaType), 'accept-ranges': 'bytes' });
    HEADERS.set(mediaType, headers);
  }
  return headers;
}

/** How an API other than Bindle's (OCI) names and cuts the same bytes. */
export interface SendParcelOptions {
  /** The strong entity tag, quoted (default `"<sha256>"`). */
  etag?: string;
  /** Parses the Range header against the size (default request-parsing's parseRange). */
  range?: (header: string | undefined, size: number) => RangeRequest;
}

/**
 * Answers GET (`head` false) or HEAD of `parcel`: 304 when If-None-Match matches, 412 when If-Match
 * does not, 206 with Content-Range for a satisfiable Range (unless If-Range names another tag),
 * 416 with `Content-Range: bytes *\/size` for an unsatisfiable one, else 200 with the bytes.
 */
export async function sendParcel(request: FastifyRequest, reply: FastifyReply, parcel: ServedParcel, head: boolean, options: SendParcelOptions = {}): Promise<FastifyReply> {
  const etag = options.etag ?? `"${parcel.sha256}"`;
  reply.headers(parcelReplyHeaders(parcel.mediaType)).header('etag', etag);
  if (evaluatePreconditions(request.headers, etag) === 'not_modified') return reply.code(304).send();
  if (head) return reply.code(200).header('content-length', parcel.size).send();
  const header = rangeApplies(request.headers['if-range'], etag) ? request.headers.range : undefined;
  const range = (options.range ?? parseRange)(header, parcel.size);
  if (range.kind === 'unsatisfiable') {
    reply.header('content-range', `bytes */${parcel.size}`);
    throw new BindleError('range_not_satisfiable', `range ${request.headers.range ?? ''} is outside the ${parcel.size}-byte parcel`);
  }
  if (range.kind === 'range') {
    const body = await parcel.read({ start: range.start, end: range.end });
    return reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${parcel.size}`)
      .header('content-length', range.end - range.start + 1)
      .send(body);
  }
  const body = parcel.read();
  return reply.code(200).header('content-length', parcel.size).send(body instanceof Promise ? await body : body);
}
