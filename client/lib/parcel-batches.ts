/**
 * Batch uploads of parcels on the client side (the server's side is
 * server/http/parcel-batch.ts): how a push groups the parcels whose bytes it holds into batches,
 * and how a batch is encoded, a multipart/form-data body of one part per parcel named by its
 * sha256. Internal to the library: BindleClient.createParcels and the push workflow use it.
 */
import { randomBytes } from 'node:crypto';
import type { Label } from '../../schema/index.js';

/** Most parcels one batch upload carries (the server takes more; smaller batches keep transfers going side by side). */
export const BATCH_PARCELS = 64;
/**
 * Most bytes of parcel data one batch upload carries: with the parts' headers, a batch's body stays
 * under 1 MiB, the default body limit of nginx (`client_max_body_size`) and of many proxies.
 */
export const BATCH_BYTES = 960 * 1024;

/**
 * Parcels (by their labels) in batches for `transfers` side by side: as many batches as that when
 * there are enough parcels, each of at most BATCH_PARCELS parcels and BATCH_BYTES bytes (a parcel
 * larger than that alone); the order is kept.
 */
export function batchesOf<T extends { readonly label: Label }>(parcels: readonly T[], transfers: number): T[][] {
  const most = Math.max(1, Math.min(BATCH_PARCELS, Math.ceil(parcels.length / Math.max(1, transfers))));
  const batches: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const parcel of parcels) {
    if (batch.length > 0 && (batch.length >= most || bytes + parcel.label.size > BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(parcel);
    bytes += parcel.label.size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * A multipart/form-data body of `parts` ([name, bytes]), each a file part, and its Content-Type.
 * The boundary is random, and drawn again in the unlikely case that some part's bytes hold it.
 */
export function multipartBody(parts: ReadonlyArray<readonly [string, Buffer]>): { body: Buffer; contentType: string } {
  let boundary: string;
  do boundary = `bindle-${randomBytes(16).toString('hex')}`;
  while (parts.some(([, data]) => data.includes(boundary)));
  const chunks: Buffer[] = [];
  for (const [name, data] of parts) {
    chunks.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      data,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
