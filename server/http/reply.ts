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

/**
 * A stored text made ready to send in one format: its body (one Buffer, so a reply neither
 * measures nor re-encodes the text, unless it is over PREPARED_BUFFER_UNITS: then the string
 * itself), its length in bytes, its strong entity tag and its media type.
 */
export interface PreparedText {
  readonly body: Buffer | string;
  readonly bytes: number;
  readonly etag: string;
  readonly contentType: string;
}

/**
 * Texts up to this many UTF-16 code units are kept as a Buffer beside their string while they are
 * cached; a bigger one is sent as its string, so that a few big invoices do not double the
 * memory the cache of recent invoices holds.
 */
export const PREPARED_BUFFER_UNITS = 64 * 1024;

/**
 * The Content-Type of stored text, as for every other document reply: Fastify adds the charset
 * to a JSON type when it sends a string, and a Buffer is sent with the type as given.
 */
const STORED_CONTENT_TYPE: Readonly<Record<keyof StoredText, string>> = {
  toml: CONTENT_TYPE.toml,
  json: `${CONTENT_TYPE.json}; charset=utf-8`,
};

/**
 * Stored texts already prepared, per format. The index hands out the same object while it caches
 * it (bounded, server/storage/recent-invoices.ts), so a cached invoice is encoded and hashed once
 * per format; an entry lives as long as its stored text.
 */
const PREPARED = new WeakMap<StoredText, { toml?: PreparedText; json?: PreparedText }>();

/**
 * A stored text in one format, prepared once. Its tag is the sha256 of the bytes served, so
 * every replica gives the same tag for the same bytes, and a yank (which rewrites them) changes it.
 */
export function preparedText(stored: StoredText, format: keyof StoredText): PreparedText {
  let formats = PREPARED.get(stored);
  if (formats === undefined) {
    formats = {};
    PREPARED.set(stored, formats);
  }
  let prepared = formats[format];
  if (prepared === undefined) {
    const text = stored[format];
    const bytes = Buffer.from(text, 'utf8');
    prepared = {
      body: text.length <= PREPARED_BUFFER_UNITS ? bytes : text,
      bytes: bytes.length,
      etag: `"${createHash('sha256').update(bytes).digest('hex')}"`,
      contentType: STORED_CONTENT_TYPE[format],
    };
    formats[format] = prepared;
  }
  return prepared;
}

/**
 * The headers every answer with a stored text carries besides Date and Content-Length: its tag,
 * its type, and that it varies with Accept. Set by sendStored and by ./fast-lane.ts.
 */
export function storedTextHeaders(text: PreparedText): { etag: string; vary: string; 'content-type': string } {
  return { etag: text.etag, vary: 'accept', 'content-type': text.contentType };
}

/**
 * Sends pre-rendered bytes (stored invoice text) in the negotiated format with their ETag, or
 * 304 when If-None-Match matches (412 when If-Match does not); HEAD sends the headers only.
 */
export function sendStored(request: FastifyRequest, reply: FastifyReply, stored: StoredText, head: boolean): FastifyReply {
  const text = preparedText(stored, replyFormat(request.headers.accept));
  reply.headers(storedTextHeaders(text));
  if (evaluatePreconditions(request.headers, text.etag) === 'not_modified') return reply.code(304).send();
  if (head) return reply.code(200).header('content-length', text.bytes).send();
  return reply.code(200).send(text.body);
}

/** Answers a HEAD request with the headers (incl. Content-Length) the GET would send. */
export function sendDocumentHead(request: FastifyRequest, reply: FastifyReply, status: number, value: object): FastifyReply {
  const format = replyFormat(request.headers.accept);
  const body = renderDocument(value, format);
  return reply.code(status).type(CONTENT_TYPE[format]).header('content-length', Buffer.byteLength(body)).send();
}
