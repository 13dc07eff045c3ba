/**
 * The multipart/form-data encoding of parcel batches, in both directions: a batch upload's body
 * (the client, client/lib/parcel-batches.ts) and a batch download's reply (the server,
 * server/http/parcel-batch-download.ts). Each parcel is a file part; a MultipartForm gives the
 * part heads, the line ending a part and the closing line, and the caller supplies each part's
 * bytes between them, so a body can be built whole (formBody) or streamed.
 */
import { randomBytes } from 'node:crypto';
import { isMediaType } from '../ids/media-type.js';

/** The head of one file part. */
export interface FormFilePart {
  /** The field's name (a batch names each part by its parcel's sha256). */
  readonly name: string;
  readonly filename: string;
  /** Sent as the part's Content-Type when it is a valid media type, else application/octet-stream. */
  readonly mediaType: string;
  /** Sent as the part's Content-Length when given. */
  readonly size?: number;
}

/** A name or filename as a quoted header parameter: `"`, CR and LF escaped as browsers do (%22, %0D, %0A). */
function quoted(value: string): string {
  return `"${value.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A')}"`;
}

/** A random boundary: 128 bits, so no part's bytes hold it unless they are chosen knowing it. */
function randomBoundary(): string {
  return `bindle-${randomBytes(16).toString('hex')}`;
}

/** One multipart/form-data body's framing: its boundary, and the bytes around each part. */
export class MultipartForm {
  readonly boundary: string;
  /** The body's Content-Type, naming the boundary. */
  readonly contentType: string;
  /** What follows each part's bytes. */
  readonly partEnd: Buffer = Buffer.from('\r\n');
  /** The last line of the body. */
  readonly closing: Buffer;

  constructor(boundary: string = randomBoundary()) {
    this.boundary = boundary;
    this.contentType = `multipart/form-data; boundary=${boundary}`;
    this.closing = Buffer.from(`--${boundary}--\r\n`);
  }

  /** The bytes that open a part (UTF-8), up to and including the blank line before its bytes. */
  head(part: FormFilePart): Buffer {
    const type = isMediaType(part.mediaType) ? part.mediaType : 'application/octet-stream';
    const length = part.size === undefined ? '' : `Content-Length: ${part.size}\r\n`;
    return Buffer.from(
      `--${this.boundary}\r\nContent-Disposition: form-data; name=${quoted(part.name)}; filename=${quoted(part.filename)}\r\nContent-Type: ${type}\r\n${length}\r\n`,
    );
  }
}

/**
 * A whole multipart/form-data body of `parts`, each with its bytes, and its Content-Type. The
 * boundary is random, and drawn again in the unlikely case that some part's bytes hold it.
 */
export function formBody(parts: ReadonlyArray<FormFilePart & { readonly data: Buffer }>): { body: Buffer; contentType: string } {
  let form: MultipartForm;
  do form = new MultipartForm();
  while (parts.some(({ data }) => data.includes(form.boundary)));
  const chunks: Buffer[] = [];
  for (const part of parts) chunks.push(form.head(part), part.data, form.partEnd);
  chunks.push(form.closing);
  return { body: Buffer.concat(chunks), contentType: form.contentType };
}
