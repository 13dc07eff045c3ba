/**
 * Batch downloads, the server's side: `GET /v1/_i/{name}/{version}?parcels=<sha256>,<sha256>,…`
 * answers the named parcels of the invoice in one multipart/form-data body, the format a batch
 * upload sends (./parcel-batch.ts) and `Response.formData()` reads: one part per parcel, named by
 * its sha256, with its label's media type and its length. The list is read and every parcel
 * looked up before anything is sent, so a parcel that is not on the invoice or not uploaded gets
 * the same 4xx as its single GET would, and the whole body's length is known (Content-Length;
 * HEAD answers the same headers). The client's side is BindleClient.downloadParcels
 * (client/lib/bindle-client.ts, reading the body with client/lib/form-parts.ts).
 *
 * Piped into the HTTP response (as Fastify sends it), the body pipes each parcel's stream into
 * the response itself, one after the other, so that a parcel read from the file store is sent
 * through the read buffer budget as its single GET is (../storage/file-read-stream.ts): a
 * client that stops reading a batch download holds no more than one that stops reading a single
 * parcel. (Through a stream of its own between them, each such client kept up to three 1 MiB
 * reads, uncounted: 400 of them, +204 MiB of RSS.)
 */
import { OutgoingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { MultipartForm } from '../../core/codec/multipart-form.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { isSha256Hex } from '../../core/ids/bindle-id.js';
import type { ParcelBody } from '../storage/parcel-reader.js';
import { parcelHeaders } from './parcel-headers.js';

/**
 * Most parcels one batch download names. The list is in the URL, and Node's request line and
 * headers may hold 16 KiB in all (a longer request is refused 431 before it gets here): each
 * digest takes 65 bytes, so 200 (13,000 bytes) leave room for the path and the headers. The
 * client asks for up to 64 at once (~4 KiB of URL, under nginx's default 8 KiB header buffers).
 */
export const MAX_BATCH_DOWNLOAD_PARCELS = 200;

/** One parcel of a batch download as the service found it. */
export interface BatchParcel {
  readonly sha256: string;
  readonly size: number;
  readonly mediaType: string;
  /** Its bytes, read only when the body gets to it. */
  read(): ParcelBody | Promise<ParcelBody>;
}

/** The distinct sha256 digests of a `parcels` query parameter (comma-separated), in their order. */
export function parseParcelList(value: string): string[] {
  const digests = [...new Set(value.split(','))];
  const bad = digests.find((d) => !isSha256Hex(d));
  if (bad !== undefined) {
    throw new BindleError(
      'invalid_query',
      `query parameter "parcels" must list sha256 digests (64 lowercase hex digits) separated by commas; ${JSON.stringify(bad.slice(0, 80))} is not one`,
    );
  }
  if (digests.length > MAX_BATCH_DOWNLOAD_PARCELS) {
    throw new BindleError('invalid_query', `query parameter "parcels" lists ${digests.length} parcels: at most ${MAX_BATCH_DOWNLOAD_PARCELS} per request`);
  }
  return digests;
}

/** A batch download's reply: its headers (Content-Length included) and, for a GET, its body. */
export interface BatchDownload {
  readonly headers: Readonly<Record<string, string | number>>;
  /** The body, reading each parcel only when it gets to it; an error reading one ends it with that error. */
  body(): Readable;
}

/** A part of the body: its head, then its parcel's bytes, then the form's part end. */
interface BatchPart {
  readonly parcel: BatchParcel;
  readonly head: Buffer;
}

/**
 * The body of a batch download. Read as any Readable, it yields the heads, parcels' chunks, part
 * ends and closing line in turn. Piped into an HTTP response, it writes them into it itself and
 * pipes each parcel's stream into it (`end: false`), so that the parcel's own pipe to a response
 * applies (a file store's read buffer budget). Destroying it destroys the parcel stream under way.
 */
class BatchBody extends Readable {
  readonly #form: MultipartForm;
  readonly #parts: readonly BatchPart[];
  /** The body's bytes chunk by chunk, for a consumer other than an HTTP response. */
  readonly #chunks: AsyncGenerator<Buffer>;
  /** The parcel stream being sent or read now. */
  #current: Readable | undefined;
  #sending = false;

  constructor(form: MultipartForm, parts: readonly BatchPart[]) {
    super();
    this.#form = form;
    this.#parts = parts;
    this.#chunks = this.#readChunks();
  }

  override _read(): void {
    if (this.#sending) return;
    this.#chunks.next().then(
      (next) => {
        if (this.destroyed) return;
        this.push(next.done === true ? null : next.value);
      },
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean | undefined }): T {
    const untouched = !this.#sending && this.readableFlowing === null && this.readableLength === 0 && !this.destroyed && !this.readableEnded;
    if (!untouched || !(destination instanceof OutgoingMessage) || this.listenerCount('data') > 0) return super.pipe(destination, options);
    this.#sending = true;
    destination.emit('pipe', this);
    this.#send(destination, options?.end !== false).then(
      () => undefined,
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
    return destination;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#current?.destroy();
    this.#current = undefined;
    void this.#chunks.return(undefined);
    callback(error);
  }

  /** The body's pieces in order: each part's head, its parcel (bytes, or a stream of them) and end, then the closing line. */
  async *#pieces(): AsyncGenerator<Buffer | Readable> {
    for (const { parcel, head } of this.#parts) {
      yield head;
      yield await parcel.read();
      yield this.#form.partEnd;
    }
    yield this.#form.closing;
  }

  async *#readChunks(): AsyncGenerator<Buffer> {
    for await (const piece of this.#pieces()) {
      if (Buffer.isBuffer(piece)) {
        yield piece;
        continue;
      }
      this.#current = piece;
      for await (const chunk of piece as AsyncIterable<Buffer>) yield chunk;
      this.#current = undefined;
    }
  }

  /** Writes the whole body into `response` (and ends it, when `end`), then ends this stream. */
  async #send(response: OutgoingMessage, end: boolean): Promise<void> {
    const gone = (): boolean => this.destroyed || response.destroyed;
    const write = async (bytes: Buffer): Promise<void> => {
      if (bytes.length === 0 || response.write(bytes) || gone()) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          response.off('drain', done);
          response.off('close', done);
          resolve();
        };
        response.on('drain', done);
        response.on('close', done);
      });
    };
    for await (const piece of this.#pieces()) {
      if (gone()) {
        if (!Buffer.isBuffer(piece)) piece.destroy();
        return;
      }
      if (Buffer.isBuffer(piece)) {
        await write(piece);
      } else {
        this.#current = piece;
        piece.pipe(response, { end: false });
        await finished(piece);
        this.#current = undefined;
      }
      if (gone()) return;
    }
    if (end) response.end();
    this.push(null);
    this.read(0);
  }
}

/** The multipart/form-data reply carrying `parcels` in their order. */
export function batchDownload(parcels: readonly BatchParcel[]): BatchDownload {
  const form = new MultipartForm();
  const parts = parcels.map((parcel) => ({
    parcel,
    head: form.head({ name: parcel.sha256, filename: `${parcel.sha256}.dat`, mediaType: parcel.mediaType, size: parcel.size }),
  }));
  const length = parts.reduce((sum, { parcel, head }) => sum + head.length + parcel.size + form.partEnd.length, form.closing.length);
  const headers = { ...parcelHeaders(form.contentType), 'content-length': length };
  return { headers, body: () => new BatchBody(form, parts) };
}
