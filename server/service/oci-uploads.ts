/**
 * OCI blob upload sessions (README "OCI registry"; distribution-spec end-4a, end-5, end-6,
 * end-13, end-14). Keeps no state: a session is a record in the invoice index
 * (server/storage/oci-uploads.ts) naming its chunks, and each chunk is a content-addressed
 * object in the parcel store, so any replica continues a session. The blob becomes visible only
 * at the closing PUT, when the chunks are streamed in order into ParcelStore.put(digest), which
 * verifies size and digest, and then linked in the session's repository (linkVerifiedBlob), so
 * that repository serves it at once. Chunk objects are unreferenced parcels: garbage collection
 * removes them after its grace period (they are not removed at close or cancel, since another
 * session may hold a chunk with the same bytes).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { sha256Hex } from '../../core/oci/index.js';
import type { InvoiceIndex } from '../storage/invoice-index.js';
import type { OciUploadChunk, OciUploadSession } from '../storage/oci-uploads.js';
import { DEFAULT_STAGING_MAX_AGE_MS, type ParcelStore } from '../storage/parcel-store.js';
import { checkParcelBytes } from '../storage/parcel-upload.js';

export interface OciUploadsDeps {
  index: InvoiceIndex;
  parcels: ParcelStore;
  /** The largest blob a session may grow to. */
  maxParcelBytes: number;
  /** A session idle longer than this is abandoned (answered as unknown); default: the parcel stores' staging max age. */
  stagingMaxAgeMs?: number;
  /** Unix milliseconds; injectable for tests. */
  nowMs?: () => number;
}

/** Where a chunk starts, from a PATCH's `Content-Range: <start>-<end>` (undefined = append at the end). */
export interface ChunkPosition {
  start: number;
  end: number;
}

/** Counts and hashes the bytes passing through; payload_too_large past `limit`. */
class ChunkMeter extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  private readonly limit: number;

  constructor(limit: number) {
    super();
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) {
      callback(new BindleError('payload_too_large', `the upload would exceed this server's blob limit of ${this.limit} bytes`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

/**
 * Links blob `hex` in repository `name` (InvoiceIndex.linkOciBlob, at `now`), for bytes this
 * request verified (stored, or hashed against the stored blob) or a mount the requester may
 * read, then checks that the blob is still stored: unavailable (send it again) when garbage
 * collection removed it in the meantime. Linking first and checking after is what makes this
 * safe against a collector (server/service/garbage-collect.ts): one that hides the blob before
 * the link is written either sees the young link when it confirms (and restores the blob) or
 * has hidden it from this check.
 */
export async function linkVerifiedBlob(deps: { index: InvoiceIndex; parcels: ParcelStore }, name: string, hex: string, now: number): Promise<void> {
  await deps.index.linkOciBlob({ name, sha256: hex, linkedAt: now });
  if (!(await deps.parcels.has(hex))) {
    throw new BindleError('unavailable', `blob sha256:${hex} was collected as garbage while it was uploaded: send it again`, { retryAfterSeconds: 1 });
  }
}

export class OciUploads {
  private readonly deps: OciUploadsDeps;

  constructor(deps: OciUploadsDeps) {
    this.deps = deps;
  }

  private now(): number {
    return this.deps.nowMs?.() ?? Date.now();
  }

  private maxAgeMs(): number {
    return this.deps.stagingMaxAgeMs ?? DEFAULT_STAGING_MAX_AGE_MS;
  }

  /** Opens a session on repository `name` (and drops sessions abandoned meanwhile). */
  async start(name: string): Promise<OciUploadSession> {
    const now = this.now();
    const session: OciUploadSession = { uuid: randomUUID(), name, chunks: [], size: 0, createdAt: now, updatedAt: now };
    await this.deps.index.createOciUpload(session, now - this.maxAgeMs());
    return session;
  }

  /** The live session `uuid` of `name`; not_found (BLOB_UPLOAD_UNKNOWN) when absent, of another repository or abandoned. */
  async session(name: string, uuid: string): Promise<OciUploadSession> {
    const found = await this.deps.index.ociUpload(uuid);
    if (found === undefined || found.name !== name) throw new BindleError('not_found', `upload session ${uuid} of ${name} does not exist`);
    if (found.updatedAt < this.now() - this.maxAgeMs()) {
      await this.deps.index.deleteOciUpload(uuid).catch(() => false);
      throw new BindleError('not_found', `upload session ${uuid} of ${name} was abandoned (idle longer than the staging max age)`);
    }
    return found;
  }

  /**
   * Appends `data` to the session: at `position.start` when given, which must be the session's
   * size now (range_not_satisfiable otherwise, also when another request appended meanwhile:
   * compare-and-set), with exactly end - start + 1 bytes. The chunk is stored as its own object
   * first; an empty body changes nothing. Returns the session as it is after.
   */
  async append(name: string, uuid: string, data: Readable, position?: ChunkPosition): Promise<OciUploadSession> {
    const { session, chunk } = await this.receiveChunk(name, uuid, data, position);
    if (chunk === undefined) return session;
    const updatedAt = this.now();
    if (!(await this.deps.index.appendOciUpload(uuid, session.size, chunk, updatedAt))) {
      const now = await this.session(name, uuid);
      throw new BindleError('range_not_satisfiable', `another request moved upload ${uuid} to offset ${now.size}: send the bytes from ${now.size} on`);
    }
    return { ...session, chunks: [...session.chunks, chunk], size: session.size + chunk.size, updatedAt };
  }

  /**
   * The closing PUT: the session's chunks and `data` (a last chunk, possibly empty, placed as
   * `append` places one) are the blob `digest`. They are streamed in order into the parcel store,
   * which verifies size and digest before anything is visible; a blob already stored is not
   * written again, but the bytes are still hashed and must match. Then the blob is linked in
   * `name` (linkVerifiedBlob) and the session ends. On digest_mismatch the session stays as it
   * was before this request (its last chunk is not appended), so the client may close it again
   * with the right digest; so it does when the blob was collected meanwhile (unavailable).
   */
  async close(name: string, uuid: string, digest: string, data: Readable, position?: ChunkPosition): Promise<void> {
    const hex = sha256Hex(digest);
    if (hex === undefined) {
      data.resume();
      throw new BindleError('digest_mismatch', `invalid digest ${JSON.stringify(digest)}: this registry takes sha256:<64 hex> digests`);
    }
    const { session, chunk } = await this.receiveChunk(name, uuid, data, position);
    const chunks = chunk === undefined ? session.chunks : [...session.chunks, chunk];
    const size = session.size + (chunk?.size ?? 0);
    const missing = await this.deps.parcels.missing(chunks.map((c) => c.sha256));
    if (missing.size > 0) {
      await this.deps.index.deleteOciUpload(uuid);
      throw new BindleError('not_found', `upload ${uuid} lost ${missing.size} of its chunks (collected as garbage): start the upload again`);
    }
    if (!(await this.storeBlob(hex, size, chunks))) {
      await checkParcelBytes(hex, size, Readable.from(this.concatenated(chunks))).catch((err: unknown) => {
        throw isBindleError(err, 'digest_mismatch') ? new BindleError('digest_mismatch', `${err.message}; the upload is as it was before this request`) : err;
      });
    }
    await linkVerifiedBlob(this.deps, name, hex, this.now());
    await this.deps.index.deleteOciUpload(uuid);
  }

  /** Cancels the session: not_found when it is not (or no longer) there. */
  async cancel(name: string, uuid: string): Promise<void> {
    await this.session(name, uuid);
    if (!(await this.deps.index.deleteOciUpload(uuid))) throw new BindleError('not_found', `upload session ${uuid} of ${name} does not exist`);
  }

  /**
   * Reads a chunk for the session (see `append`) and stores it as its own object, without adding
   * it to the session; undefined when the body is empty.
   */
  private async receiveChunk(name: string, uuid: string, data: Readable, position?: ChunkPosition): Promise<{ session: OciUploadSession; chunk: OciUploadChunk | undefined }> {
    const session = await this.session(name, uuid);
    if (position !== undefined && position.start !== session.size) {
      data.resume();
      throw new BindleError('range_not_satisfiable', `the chunk starts at ${position.start}, but the upload is at offset ${session.size}: send the bytes from ${session.size} on`);
    }
    const chunk = await this.storeChunk(data, this.deps.maxParcelBytes - session.size);
    if (chunk !== undefined && position !== undefined && position.end - position.start + 1 !== chunk.size) {
      throw new BindleError('bad_request', `Content-Range ${position.start}-${position.end} announces ${position.end - position.start + 1} bytes, but ${chunk.size} came`);
    }
    return { session, chunk };
  }

  /**
   * Stores `chunks`, in order, as the blob `hex` (verified by the store); false when that blob
   * was already stored, in which case nothing was read or verified.
   */
  private async storeBlob(hex: string, size: number, chunks: readonly OciUploadChunk[]): Promise<boolean> {
    if (await this.deps.parcels.has(hex)) return false;
    try {
      await this.deps.parcels.put(hex, size, Readable.from(this.concatenated(chunks)));
      return true;
    } catch (err) {
      if (err instanceof BindleError && err.code === 'already_exists') return false;
      throw err;
    }
  }

  private async *concatenated(chunks: readonly OciUploadChunk[]): AsyncGenerator<Buffer> {
    for (const chunk of chunks) {
      for await (const bytes of await this.deps.parcels.openRead(chunk.sha256)) yield bytes as Buffer;
    }
  }

  /** Stages `data` in a temp file while hashing it (at most `limit` bytes), then stores it by its digest; undefined when empty. */
  private async storeChunk(data: Readable, limit: number): Promise<OciUploadChunk | undefined> {
    const dir = await mkdtemp(join(tmpdir(), 'bindle-oci-chunk-'));
    try {
      const file = join(dir, 'chunk');
      const meter = new ChunkMeter(limit);
      await pipeline(data, meter, createWriteStream(file));
      if (meter.size === 0) return undefined;
      const chunk = { sha256: meter.hash.digest('hex'), size: meter.size };
      if (!(await this.deps.parcels.has(chunk.sha256))) {
        try {
          await this.deps.parcels.put(chunk.sha256, chunk.size, createReadStream(file));
        } catch (err) {
          if (!(err instanceof BindleError && err.code === 'already_exists')) throw err;
        }
      }
      return chunk;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
