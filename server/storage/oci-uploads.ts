/**
 * OCI blob upload sessions (README "OCI registry", distribution-spec end-4a/5/6/13/14) as every
 * InvoiceIndex keeps them: one record per session naming its chunks, each chunk a
 * content-addressed object in the parcel store. The state lives in the index, never in a
 * process, so any replica continues a session; offsets advance by compare-and-set, so
 * concurrent PATCHes cannot interleave. This module holds the record types and the checks every
 * implementation applies.
 */
import { BindleError } from '../../core/errors/bindle-error.js';

/** One uploaded chunk: a parcel-store object (unreferenced by any invoice; GC collects it later). */
export interface OciUploadChunk {
  /** Lowercase hex sha256 of the chunk's bytes. */
  sha256: string;
  /** Its length in bytes (> 0). */
  size: number;
}

/** An upload session: the chunks in upload order; the blob is their concatenation. */
export interface OciUploadSession {
  /** The session id (a UUID), unique among sessions. */
  uuid: string;
  /** The repository (bindle name) the session was opened on; only that repository continues it. */
  name: string;
  chunks: OciUploadChunk[];
  /** The sum of the chunk sizes: the offset the next chunk must start at. */
  size: number;
  /** Unix milliseconds of the session's start. */
  createdAt: number;
  /** Unix milliseconds of its last change (sessions idle past the staging max age are abandoned). */
  updatedAt: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** internal (a caller bug) unless `chunk` is a lowercase sha256 with a positive safe-integer size. */
export function checkUploadChunk(chunk: OciUploadChunk): void {
  if (!HEX64.test(chunk.sha256) || !Number.isSafeInteger(chunk.size) || chunk.size <= 0) {
    throw new BindleError('internal', `invalid upload chunk ${JSON.stringify(chunk)}: a sha256 hex digest and a positive size`);
  }
}

/** The session from a stored row (chunks as JSON text or already parsed; numbers maybe strings). */
export function uploadSessionOf(row: {
  uuid: string;
  name: string;
  chunks: string | OciUploadChunk[];
  size: number | string;
  created_at: number | string;
  updated_at: number | string;
}): OciUploadSession {
  const chunks = typeof row.chunks === 'string' ? (JSON.parse(row.chunks) as OciUploadChunk[]) : row.chunks;
  return {
    uuid: row.uuid,
    name: row.name,
    chunks: chunks.map((c) => ({ sha256: c.sha256, size: c.size })),
    size: Number(row.size),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
