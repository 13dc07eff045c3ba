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

/** How one part is stored: `store(sha256, data)` must read `data` to its end (or fail) and say what it did. */
export type PartStore = (sha256: string, data: Readable) => Promise<PartOutcome>;

/**
 * The state of one batch request while its parts are read and stored: the outcome of each part,
 * the parts being stored from memory, the part being read, and the first failure. It answers
 * (`resolve` or `reject`) once the body is read, or has failed, and no part is being stored.
 */
class BatchReading {
  #parts = 0;
  /** Each part's sha256 and outcome, by its index, once stored. */
  readonly #outcomes: Array<{ sha256: string; outcome: PartOutcome } | undefined> = [];
  /** The first failure, and the part whose storing failed, if a part's did. */
  #failure: { error: Error; index?: number } | undefined;
  /** The part being read now (so that a failure can stop it). */
  #current: Readable | undefined;
  /** Small parts being stored from memory. */
  readonly #inFlight = new Set<Promise<void>>();
  /** Parts waiting their turn, each taken once the one before it is handed on. */
  #queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly stopReading: () => void,
    private readonly store: PartStore,
    private readonly memory: PartMemory,
    private readonly answer: { resolve: (reply: ParcelBatchReply) => void; reject: (err: Error) => void },
  ) {}

  /** Parts seen so far. */
  get parts(): number {
    return this.#parts;
  }

  /** A part the parser found: taken in order, so a bad one fails the request after the parts before it are handed on. */
  add(name: string, data: Readable): void {
    // Its errors (the body ending inside it) reach whoever reads it; none may go unheard.
    data.on('error', () => undefined);
    const index = this.#parts++;
    this.#queue = this.#queue.then(() => this.#take(name, data, index)).catch((err: unknown) => this.fail(err));
  }

  /** Records the first failure and stops reading; the request is answered once nothing is being stored. */
  fail(err: unknown, index?: number): void {
    if (this.#failure !== undefined) return;
    this.#failure = { error: asError(err), ...(index !== undefined ? { index } : {}) };
    this.stopReading();
    this.#current?.destroy(this.#failure.error);
    void this.settle();
  }

  /** Answers once every part taken so far is stored (or has failed). */
  async settle(): Promise<void> {
    await this.#queue;
    await this.#drain();
    const failure = this.#failure;
    if (failure !== undefined) {
      this.answer.reject(failure.index === undefined ? failure.error : this.#partFailure(failure.index, failure.error));
      return;
    }
    const reply: ParcelBatchReply = { created: [], existing: [] };
    for (const o of this.#outcomes) if (o !== undefined) reply[o.outcome === 'created' ? 'created' : 'existing'].push(o.sha256);
    this.answer.resolve(reply);
  }

  async #drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** The failure of part `index`, named by it and saying how many parts are stored, once none is being stored. */
  #partFailure(index: number, err: Error): Error {
    if (!isBindleError(err)) return err;
    const stored = this.#outcomes.filter((o) => o !== undefined).length;
    const note = stored === 0 ? '' : ` (${stored} other part(s) of this request are stored)`;
    return new BindleError(err.code, `part ${index + 1}: ${err.message}${note}`, { cause: err });
  }

  async #storePart(sha256: string, data: Readable, index: number): Promise<void> {
    try {
      this.#outcomes[index] = { sha256, outcome: await this.store(sha256, data) };
    } catch (err) {
      this.fail(err, index);
    }
  }

  /** Takes part `index` once the parts before it are handed on: stores it from memory beside others, or streams it alone. */
  async #take(name: string, data: Readable, index: number): Promise<void> {
    if (this.#failure !== undefined) {
      data.resume();
      return;
    }
    if (!isSha256Hex(name)) {
      data.resume();
      this.fail(new BindleError('bad_request', `it is named ${JSON.stringify(name)}: name each part by its parcel's sha256 (64 lowercase hex digits)`), index);
      return;
    }
    while (this.#inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(this.#inFlight);
    if (this.#failure !== undefined) {
      data.resume();
      return;
    }
    if (!this.memory.reserve()) {
      await this.#streamAlone(name, data, index, () => data);
      return;
    }
    let head: { chunks: Buffer[]; ended: boolean };
    this.#current = data;
    try {
      head = await readHead(data, BUFFERED_PART_BYTES);
    } catch (err) {
      this.memory.release();
      this.fail(err);
      return;
    } finally {
      this.#current = undefined;
    }
    if (head.ended) {
      const job = this.#storePart(name, Readable.from(head.chunks, { objectMode: false }), index).finally(() => {
        this.memory.release();
        this.#inFlight.delete(job);
      });
      this.#inFlight.add(job);
      return;
    }
    // A large part.
    try {
      await this.#streamAlone(name, data, index, () => rejoined(head.chunks, data));
    } finally {
      this.memory.release();
    }
  }

  /** Streams part `index` (`open()`, a stream reading `data`) into the store after the parts before it, as a single upload is. */
  async #streamAlone(name: string, data: Readable, index: number, open: () => Readable): Promise<void> {
    await this.#drain();
    if (this.#failure !== undefined) {
      data.resume();
      return;
    }
    const stream = open();
    this.#current = stream;
    try {
      await this.#storePart(name, stream, index);
    } finally {
      this.#current = undefined;
    }
  }
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
export function readParcelParts(body: Readable, contentType: string, store: PartStore, memory: PartMemory = partMemory): Promise<ParcelBatchReply> {
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
    const batch = new BatchReading(() => body.unpipe(parser), store, memory, { resolve, reject });
    parser.on('file', (name, data) => batch.add(name, data));
    parser.on('partsLimit', () => {
      batch.fail(new BindleError('payload_too_large', `the body has more than ${MAX_BATCH_PARTS} parts, this server's limit for one request: send the parcels in several`));
    });
    parser.on('error', (err) => {
      batch.fail(isBindleError(err) ? err : new BindleError('malformed_body', `the multipart body is malformed: ${asError(err).message}`, { cause: err }));
    });
    parser.on('finish', () => {
      if (batch.parts === 0) batch.fail(new BindleError('malformed_body', 'the multipart body has no parts: send one part per parcel, named by its sha256'));
      else void batch.settle();
    });
    // A request cut short (the client gone, or too slow: see ./request-timeouts.ts) ends no part.
    finished(body, (err) => {
      if (err !== undefined && err !== null) batch.fail(new BindleError('malformed_body', `the request body ended early: ${err.message}`, { cause: err }));
    });
    body.pipe(parser);
  });
}
