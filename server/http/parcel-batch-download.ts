/**
 * Batch downloads, the server's side: `GET /v1/_i/{name}/{version}?parcels=<sha256>,<sha256>,…`
 * answers the named parcels of the invoice in one multipart/form-data body, the format a batch
 * upload sends (./parcel-batch.ts) and `Response.formData()` reads: one part per parcel, named by
 * its sha256, with its label's media type and its length. The list is read and every parcel
 * looked up before anything is sent, so a parcel that is not on the invoice or not uploaded gets
 * the same 4xx as its single GET would, and the whole body's length is known (Content-Length;
 * HEAD answers the same headers). The client's side is BindleClient.downloadParcels
 * (client/lib/bindle-client.ts, reading the body with client/lib/form-parts.ts).
 */
import { Readable } from 'node:stream';
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

/** The multipart/form-data reply carrying `parcels` in their order. */
export function batchDownload(parcels: readonly BatchParcel[]): BatchDownload {
  const form = new MultipartForm();
  const parts = parcels.map((parcel) => ({
    parcel,
    head: form.head({ name: parcel.sha256, filename: `${parcel.sha256}.dat`, mediaType: parcel.mediaType, size: parcel.size }),
  }));
  const length = parts.reduce((sum, { parcel, head }) => sum + head.length + parcel.size + form.partEnd.length, form.closing.length);
  const headers = { ...parcelHeaders(form.contentType), 'content-length': length };
  async function* chunks(): AsyncGenerator<Buffer> {
    for (const { parcel, head } of parts) {
      yield head;
      const data = await parcel.read();
      if (Buffer.isBuffer(data)) yield data;
      else for await (const chunk of data as AsyncIterable<Buffer>) yield chunk;
      yield form.partEnd;
    }
    yield form.closing;
  }
  return { headers, body: () => Readable.from(chunks(), { objectMode: false }) };
}
