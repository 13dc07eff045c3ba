/**
 * Reads a batch of parcels from a `multipart/form-data` request body (POST
 * `/_i/{name}/{version}`, an extension of the protocol: its written spec has that POST "optionally
 * also sending some or all of the parcels"): one part per parcel, named by its sha256 (the
 * `name` of its Content-Disposition; a filename, if any, is ignored), its body the parcel's
 * bytes. Parsing is @fastify/busboy's. Parts are handed on one at a time, in order, as streams;
 * a part is not read until the one before it is done with, and the body is not read further
 * while a part waits, so a batch holds no more in memory than a single upload does.
 */
import { finished, type Readable } from 'node:stream';
import { Busboy, type BusboyInstance } from '@fastify/busboy';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { isSha256Hex } from '../../core/ids/bindle-id.js';

/** Most parts one batch may hold; one more fails the request 413. */
export const MAX_BATCH_PARTS = 1000;
/** Most header lines of one part (Content-Disposition, Content-Type and a few more). */
const MAX_PART_HEADERS = 8;

/** Whether a Content-Type header names a multipart/form-data body. */
export function isMultipartFormData(contentType: string | undefined): boolean {
  return contentType !== undefined && /^multipart\/form-data\s*(;|$)/i.test(contentType.trim());
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Reads the parts of `body` (whose Content-Type is `contentType`), calling `store(sha256, data,
 * index)` for each in order and waiting for it; `data` is the part's bytes, which `store` must
 * read to the end (or fail). Resolves with the number of parts once the body is read and every
 * part stored. The first failure rejects and stops the reading: a part whose name is not a
 * sha256 (`bad_request`), more than MAX_BATCH_PARTS parts (`payload_too_large`), a body that is
 * not well-formed multipart or has no part (`malformed_body`), a body cut short, or what `store`
 * throws; the part being stored then is destroyed with that error. Parts stored before the
 * failure stay stored.
 */
export function readParcelParts(
  body: Readable,
  contentType: string,
  store: (sha256: string, data: Readable, index: number) => Promise<void>,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let parser: BusboyInstance;
    try {
      // Every part is a file, a stream: one without a filename too (curl's `-F sha=<file`).
      parser = Busboy({
        headers: { 'content-type': contentType },
        isPartAFile: () => true,
        limits: { parts: MAX_BATCH_PARTS, headerPairs: MAX_PART_HEADERS },
      });
    } catch (err) {
      reject(new BindleError('malformed_body', `the multipart body cannot be read: ${asError(err).message}`, { cause: err }));
      return;
    }
    let parts = 0;
    let failed = false;
    let current: Readable | undefined;
    let queue: Promise<void> = Promise.resolve();
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      body.unpipe(parser);
      current?.destroy(asError(err));
      reject(asError(err));
    };
    parser.on('file', (name, data) => {
      // Its errors (the body ending inside it) reach whoever reads it; none may go unheard.
      data.on('error', () => undefined);
      const index = parts++;
      // Parts are judged in order: a bad one fails the request after the parts before it are stored.
      queue = queue.then(async () => {
        if (failed) {
          data.resume();
          return;
        }
        if (!isSha256Hex(name)) {
          data.resume();
          throw new BindleError('bad_request', `part ${index + 1} of the body is named ${JSON.stringify(name)}: name each part by its parcel's sha256 (64 lowercase hex digits)`);
        }
        current = data;
        try {
          await store(name, data, index);
        } finally {
          current = undefined;
        }
      }).catch(fail);
    });
    parser.on('partsLimit', () => {
      fail(new BindleError('payload_too_large', `the body has more than ${MAX_BATCH_PARTS} parts, this server's limit for one request: send the parcels in several`));
    });
    parser.on('error', (err) => {
      fail(isBindleError(err) ? err : new BindleError('malformed_body', `the multipart body is malformed: ${asError(err).message}`, { cause: err }));
    });
    parser.on('finish', () => {
      void queue.then(() => {
        if (failed) return;
        if (parts === 0) fail(new BindleError('malformed_body', 'the multipart body has no parts: send one part per parcel, named by its sha256'));
        else resolve(parts);
      });
    });
    // A request cut short (the client gone, or too slow: see ./request-timeouts.ts) ends no part.
    finished(body, (err) => {
      if (err !== undefined && err !== null) fail(new BindleError('malformed_body', `the request body ended early: ${err.message}`, { cause: err }));
    });
    body.pipe(parser);
  });
}
