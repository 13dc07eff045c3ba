/**
 * Reads a multipart/form-data body part by part (@fastify/busboy): a batch download's reply
 * (the server's side is server/http/parcel-batch-download.ts). Loaded by BindleClient with the
 * first batch download, so that a CLI that never makes one does not load the parser.
 */
import { Busboy, type BusboyInstance } from '@fastify/busboy';
import { finished, type Readable } from 'node:stream';
import { BindleError } from '../../core/errors/bindle-error.js';

/** Header lines one part may have (its disposition, type and length, and some room). */
const MAX_PART_HEADERS = 16;

/**
 * Hands each part of `body` (whose Content-Type is `contentType`) to `onPart` with its name and
 * its bytes as a stream, in order; `onPart` must read or discard the stream. Resolves once the
 * body is read to its end, and rejects with `malformed_body` (naming `doing`) when it is not
 * well-formed multipart or has more than `maxParts` parts, or with the body's own error (a
 * transfer cut short); a part still being read then ends with that error too.
 */
export function readFormParts(body: Readable, contentType: string, maxParts: number, doing: string, onPart: (name: string, data: Readable) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const malformed = (why: string, cause?: unknown): BindleError =>
      new BindleError('malformed_body', `${doing}: the server's multipart reply ${why}`, cause === undefined ? undefined : { cause });
    let parser: BusboyInstance;
    try {
      parser = Busboy({ headers: { 'content-type': contentType }, isPartAFile: () => true, limits: { parts: maxParts, headerPairs: MAX_PART_HEADERS } });
    } catch (err) {
      reject(malformed('cannot be read', err));
      return;
    }
    let failed = false;
    /** Parts handed on and not ended yet: a failure ends them with its error, or their readers would wait for ever. */
    const open = new Set<Readable>();
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      body.unpipe(parser);
      body.destroy();
      for (const part of open) part.destroy(err);
      reject(err);
    };
    parser.on('file', (name, data) => {
      if (failed) {
        data.resume();
        return;
      }
      open.add(data);
      data.once('close', () => open.delete(data));
      data.once('end', () => open.delete(data));
      onPart(name, data);
    });
    parser.on('partsLimit', () => fail(malformed(`has more than the ${maxParts} part(s) asked for`)));
    parser.on('error', (err: unknown) => fail(malformed('is malformed', err)));
    parser.on('finish', () => {
      if (!failed) resolve();
    });
    // Also when the body failed before this was called (its connection closed while this module
    // loaded): an 'error' listener added then would never hear of it, and the reading would wait for ever.
    finished(body, (err) => {
      if (err !== undefined && err !== null) fail(err);
    });
    body.pipe(parser);
  });
}
