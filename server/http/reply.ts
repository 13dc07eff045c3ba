/**
 * Writing documents and errors to a reply in the negotiated format. Routes return data; these
 * helpers are the only place that serializes it. Stored invoices are sent with a strong ETag
 * derived from the bytes served, and answer conditional requests (./conditional.ts).
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { renderDocument } from '../../core/codec/document-codec.js';
import { evaluatePreconditions } from './conditional.js';
import { replyFormat, CONTENT_TYPE } from './negotiation.js';

/** Sends `value` as TOML or JSON per the request's Accept header. */
export function sendDocument(request: FastifyRequest, reply: FastifyReply, status: number, value: object): FastifyReply {
  const format = replyFormat(request.headers.accept);
  return reply.code(status).type(CONTENT_TYPE[format]).send(renderDocument(value, format));
}

/** Stored invoice text in both formats. */
export interface StoredText {
  readonly toml: string;
  readonly json: string;
}

/** Entity tags of stored texts already hashed (the index hands out the same object while it caches it). */
const TAGS = new WeakMap<StoredText, { toml?: string; json?: string }>();

/**
 * The strong entity tag of a stored text in one format: the sha256 of the bytes served, so every
 * replica gives the same tag for the same bytes, and a yank (which rewrites them) changes it.
 */
export function storedTag(stored: StoredText, format: keyof StoredText): string {
  let tags = TAGS.get(stored);
  if (tags === undefined) {
    tags = {};
    TAGS.set(stored, tags);
  }
  const tag = (tags[format] ??= `"${createHash('sha256').update(stored[format], 'utf8').digest('hex')}"`);
  return tag;
}

/**
 * Sends pre-rendered bytes (stored invoice text) in the negotiated format with their ETag, or
 * 304 when If-None-Match matches (412 when If-Match does not); HEAD sends the headers only.
 */
export function sendStored(request: FastifyRequest, reply: FastifyReply, stored: StoredText, head: boolean): FastifyReply {
  const format = replyFormat(request.headers.accept);
  const body = stored[format];
  const etag = storedTag(stored, format);
  reply.header('etag', etag).header('vary', 'accept').type(CONTENT_TYPE[format]);
  if (evaluatePreconditions(request.headers, etag) === 'not_modified') return reply.code(304).send();
  if (head) return reply.code(200).header('content-length', Buffer.byteLength(body)).send();
  return reply.code(200).send(body);
}

/** Answers a HEAD request with the headers (incl. Content-Length) the GET would send. */
export function sendDocumentHead(request: FastifyRequest, reply: FastifyReply, status: number, value: object): FastifyReply {
  const format = replyFormat(request.headers.accept);
  const body = renderDocument(value, format);
  return reply.code(status).type(CONTENT_TYPE[format]).header('content-length', Buffer.byteLength(body)).send();
}
