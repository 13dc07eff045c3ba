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
 * further while that is full; and all requests of the process together hold at most
 * MAX_BUFFERED_BYTES (PartMemory): beyond it, small parts are streamed one at a time too, so a
 * flood of batches whose stores are slow costs no more memory than single uploads would.
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
/** Most bytes of small parts the batches of one process hold in memory at once (PartMemory). */
export const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;
/** Most header lines of one part (Content-Disposition, Content-Type and a few more). */
const MAX_PART_HEADERS = 8;

/** What storing one part did: stored it, or found the parcel already stored (its bytes dropped). */
export type PartOutcome = 'created' | 'existing';

/** Room for small parts read whole, shared by the batch requests of a process, BUFFERED_PART_BYTES a part. */
export class PartMemory {
  #held = 0;
  constructor(readonly maxBytes: number) {}

  /** Bytes reserved now. */
  get held(): number {
    return this.#held;
  }

  /** Reserves room for one part; false when there is none left. */
  reserve(): boolean {
    if (this.#held + BUFFERED_PART_BYTES > this.maxBytes) return false;
    this.#held += BUFFERED_PART_BYTES;
    return true;
  }

  /** Gives back the room of one part reserved before. */
  release(): void {
    this.#held -= BUFFERED_PART_BYTES;
  }
}

/** The room of this process's batches. */
export const partMemory = new PartMemory(MAX_BUFFERED_BYTES);

/** Whether a Content-Type header names a multipart/form-data body. */
export function isMultipartFormData(contentType: string | undefined): contentType is string {
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
  memory: PartMemory = partMemory,
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

    /** Takes part `index` once the parts before it are handed on: stores it from memory beside others, or streams it alone. */
    const takePart = async (name: string, data: Readable, index: number): Promise<void> => {
      if (failure !== undefined) {
        data.resume();
        return;
      }
      if (!isSha256Hex(name)) {
        data.resume();
        fail(new BindleError('bad_request', `it is named ${JSON.stringify(name)}: name each part by its parcel's sha256 (64 lowercase hex digits)`), index);
        return;
      }
      while (inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(inFlight);
      if (failure !== undefined) {
        data.resume();
        return;
      }
      /** Streams the part into the store after the parts before it, as a single upload is. */
      const streamAlone = async (stream: () => Readable): Promise<void> => {
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        if (failure !== undefined) {
          data.resume();
          return;
        }
        current = stream();
        try {
          await storePart(name, current, index);
        } finally {
          current = undefined;
        }
      };
      if (!memory.reserve()) {
        await streamAlone(() => data);
        return;
      }
      current = data;
      let head: { chunks: Buffer[]; ended: boolean };
      try {
        head = await readHead(data, BUFFERED_PART_BYTES);
      } catch (err) {
        memory.release();
        fail(err);
        return;
      } finally {
        current = undefined;
      }
      if (head.ended) {
        const job = storePart(name, Readable.from(head.chunks, { objectMode: false }), index).finally(() => {
          memory.release();
          inFlight.delete(job);
        });
        inFlight.add(job);
        return;
      }
      // A large part.
      try {
        await streamAlone(() => rejoined(head.chunks, data));
      } finally {
        memory.release();
      }
    };

    parser.on('file', (name, data) => {
      // Its errors (the body ending inside it) reach whoever reads it; none may go unheard.
      data.on('error', () => undefined);
      const index = parts++;
      // Parts are taken in order: a bad one fails the request after the parts before it are handed on.
      queue = queue.then(() => takePart(name, data, index)).catch(fail);
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
