/**
 * Reads a batch of parcels from a `multipart/form-data` request body (POST
 * `/_i/{name}/{version}`, an extension of the protocol: its written spec has that POST "optionally
 * also sending some or all of the parcels"): one part per parcel, named by its sha256 (the
 * `name` of its Content-Disposition; a filename, if any, is ignored), its body the parcel's
 * bytes. Parsing is @fastify/busboy's.
 *
 * Parts are taken in order. A small part (at most BUFFERED_PART_BYTES) is read whole and stored
 * from memory while the next ones are read, up to PARTS_IN_FLIGHT of them at once: storing a
 * parcel waits mostly on the disk (a synced write, a link, a directory sync), and more of those
 * under way at once share the disk's flushes (at concurrency 64 a server stores 1.4–1.7× the
 * small parcels per second it stores at 16). A larger part is streamed into the store once the
 * ones before it are stored, as a single upload is. So a request holds at most
 * PARTS_IN_FLIGHT × BUFFERED_PART_BYTES of parcel data in memory, and the body is not read
 * further while that is full.
 */
import { finished, PassThrough, Readable } from 'node:stream';
import { Busboy, type BusboyInstance } from '@fastify/busboy';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { isSha256Hex } from '../../core/ids/bindle-id.js';
import type { ParcelBatchReply } from '../../schema/index.js';

/** Most parts one batch may hold; one more fails the request 413. */
export const MAX_BATCH_PARTS = 1000;
/** Parts of at most this many bytes are read whole and stored from memory, several at once. */
export const BUFFERED_PART_BYTES = 64 * 1024;
/** Most small parts of one request being stored at once. */
export const PARTS_IN_FLIGHT = 4;
/** Most header lines of one part (Content-Disposition, Content-Type and a few more). */
const MAX_PART_HEADERS = 8;

/** What storing one part did: stored it, or found the parcel already stored (its bytes dropped). */
export type PartOutcome = 'created' | 'existing';

/** Whether a Content-Type header names a multipart/form-data body. */
export function isMultipartFormData(contentType: string | undefined): boolean {
  return contentType !== undefined && /^multipart\/form-data\s*(;|$)/i.test(contentType.trim());
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The first `limit` bytes of `data` and more: resolves with what was read once `data` has ended
 * (`ended`) or has given more than `limit` bytes (then paused, the rest unread).
 */
function readHead(data: Readable, limit: number): Promise<{ chunks: Buffer[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (ended: boolean): void => {
      data.off('data', onData);
      data.off('end', onEnd);
      data.off('error', onError);
      if (!ended) data.pause();
      resolve({ chunks, ended });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes > limit) done(false);
    };
    const onEnd = (): void => done(true);
    const onError = (err: Error): void => {
      data.off('data', onData);
      data.off('end', onEnd);
      reject(err);
    };
    data.on('data', onData);
    data.on('end', onEnd);
    data.on('error', onError);
  });
}

/** `head` followed by the rest of `rest`, as one stream; an error of `rest` ends it with that error. */
function rejoined(head: readonly Buffer[], rest: Readable): Readable {
  const joined = new PassThrough();
  for (const chunk of head) joined.write(chunk);
  rest.on('error', (err) => joined.destroy(err));
  rest.pipe(joined);
  return joined;
}

/**
 * Reads the parts of `body` (whose Content-Type is `contentType`) and stores each with
 * `store(sha256, data)`, which must read `data` to its end (or fail) and say what it did.
 * Resolves, once the body is read and every part stored, with the sha256 of the parts stored
 * (`created`) and of those already there (`existing`), each in the order of the parts.
 *
 * The first failure stops the reading and, once the parts being stored have settled, rejects:
 * a part whose name is not a sha256 (`bad_request`), more than MAX_BATCH_PARTS parts
 * (`payload_too_large`), a body that is not well-formed multipart or has no part
 * (`malformed_body`), a body cut short, or what `store` throws. The error of a part (a bad name,
 * or a BindleError from `store`) is rejected with its code and its message prefixed with the
 * part's number and followed by how many parts of the request are stored: those stay stored
 * (small parts after the failing one may be among them, stored side by side with it).
 */
export function readParcelParts(
  body: Readable,
  contentType: string,
  store: (sha256: string, data: Readable) => Promise<PartOutcome>,
): Promise<ParcelBatchReply> {
  return new Promise<ParcelBatchReply>((resolve, reject) => {
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
    /** Each part's sha256 and outcome, by its index, once stored. */
    const outcomes: Array<{ sha256: string; outcome: PartOutcome } | undefined> = [];
    /** The first failure, and the part whose storing failed, if a part's did. */
    let failure: { error: Error; index?: number } | undefined;
    /** The part being read now (so that a failure can stop it). */
    let current: Readable | undefined;
    /** Small parts being stored from memory. */
    const inFlight = new Set<Promise<void>>();
    /** Parts waiting their turn, each running once the one before it is read. */
    let queue: Promise<void> = Promise.resolve();

    /** Records the first failure and stops reading; the request is answered once nothing is being stored. */
    const fail = (err: unknown, index?: number): void => {
      if (failure !== undefined) return;
      failure = { error: asError(err), ...(index !== undefined ? { index } : {}) };
      body.unpipe(parser);
      current?.destroy(failure.error);
      void settle();
    };
    const settle = async (): Promise<void> => {
      await queue;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      if (failure !== undefined) {
        reject(failure.index === undefined ? failure.error : partFailure(failure.index, failure.error));
        return;
      }
      const reply: ParcelBatchReply = { created: [], existing: [] };
      for (const o of outcomes) if (o !== undefined) reply[o.outcome === 'created' ? 'created' : 'existing'].push(o.sha256);
      resolve(reply);
    };
    /** The failure of part `index`, named by it and saying how many parts are stored, once none is being stored. */
    const partFailure = (index: number, err: Error): Error => {
      if (!isBindleError(err)) return err;
      const stored = outcomes.filter((o) => o !== undefined).length;
      const note = stored === 0 ? '' : ` (${stored} other part(s) of this request are stored)`;
      return new BindleError(err.code, `part ${index + 1}: ${err.message}${note}`, { cause: err });
    };
    const storePart = async (sha256: string, data: Readable, index: number): Promise<void> => {
      try {
        outcomes[index] = { sha256, outcome: await store(sha256, data) };
      } catch (err) {
        fail(err, index);
      }
    };

    parser.on('file', (name, data) => {
      // Its errors (the body ending inside it) reach whoever reads it; none may go unheard.
      data.on('error', () => undefined);
      const index = parts++;
      // Parts are taken in order: a bad one fails the request after the parts before it are handed on.
      queue = queue.then(async () => {
        if (failure !== undefined) {
          data.resume();
          return;
        }
        if (!isSha256Hex(name)) {
          data.resume();
          fail(new BindleError('bad_request', `it is named ${JSON.stringify(name)}: name each part by its parcel's sha256 (64 lowercase hex digits)`), index);
          return;
        }
        current = data;
        let head: { chunks: Buffer[]; ended: boolean };
        try {
          head = await readHead(data, BUFFERED_PART_BYTES);
        } catch (err) {
          fail(err);
          return;
        } finally {
          current = undefined;
        }
        if (head.ended) {
          while (inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(inFlight);
          if (failure !== undefined) return;
          const job = storePart(name, Readable.from(head.chunks, { objectMode: false }), index).finally(() => inFlight.delete(job));
          inFlight.add(job);
          return;
        }
        // A large part is streamed, as a single upload is, after the parts before it.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        if (failure !== undefined) {
          data.resume();
          return;
        }
        current = rejoined(head.chunks, data);
        try {
          await storePart(name, current, index);
        } finally {
          current = undefined;
        }
      });
    });
    parser.on('partsLimit', () => {
      fail(new BindleError('payload_too_large', `the body has more than ${MAX_BATCH_PARTS} parts, this server's limit for one request: send the parcels in several`));
    });
    parser.on('error', (err) => {
      fail(isBindleError(err) ? err : new BindleError('malformed_body', `the multipart body is malformed: ${asError(err).message}`, { cause: err }));
    });
    parser.on('finish', () => {
      if (parts === 0) fail(new BindleError('malformed_body', 'the multipart body has no parts: send one part per parcel, named by its sha256'));
      else void settle();
    });
    // A request cut short (the client gone, or too slow: see ./request-timeouts.ts) ends no part.
    finished(body, (err) => {
      if (err !== undefined && err !== null) fail(new BindleError('malformed_body', `the request body ended early: ${err.message}`, { cause: err }));
    });
    body.pipe(parser);
  });
}
