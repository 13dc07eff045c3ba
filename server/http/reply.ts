/**
 * Writing documents and errors to a reply in the negotiated format. Routes return data; these
 * helpers are the only place that serializes it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { renderDocument } from '../../core/codec/document-codec.js';
import { replyFormat, CONTENT_TYPE } from './negotiation.js';

/** Sends `value` as TOML or JSON per the request's Accept header. */
export function sendDocument(request: FastifyRequest, reply: FastifyReply, status: number, value: object): FastifyReply {
  const format = replyFormat(request.headers.accept);
  return reply.code(status).type(CONTENT_TYPE[format]).send(renderDocument(value, format));
}

/** Sends pre-rendered bytes (stored invoice text) in the negotiated format. */
export function sendStored(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  stored: { toml: string; json: string },
): FastifyReply {
  const format = replyFormat(request.headers.accept);
  return reply.code(status).type(CONTENT_TYPE[format]).send(format === 'json' ? stored.json : stored.toml);
}

/** Answers a HEAD request with the headers (incl. Content-Length) the GET would send. */
export function sendDocumentHead(request: FastifyRequest, reply: FastifyReply, status: number, value: object | { toml: string; json: string }, stored = false): FastifyReply {
  const format = replyFormat(request.headers.accept);
  const body = stored ? (value as { toml: string; json: string })[format] : renderDocument(value, format);
  return reply.code(status).type(CONTENT_TYPE[format]).header('content-length', Buffer.byteLength(body)).send();
}
