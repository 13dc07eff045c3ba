/**
 * Parcel batches on the client side: how a push groups the parcels whose bytes it holds into
 * batch uploads (the server's side is server/http/parcel-batch.ts), and a get the small parcels
 * it fetches into batch downloads. A batch's body is encoded by core/codec/multipart-form.ts.
 * Internal to the library: the push and get workflows use it.
 */

/** Most parcels one batch upload carries (the server takes more; smaller batches keep transfers going side by side). */
export const BATCH_PARCELS = 64;
/**
 * Most bytes of parcel data one batch upload carries: with the parts' headers, a batch's body stays
 * under 1 MiB, the default body limit of nginx (`client_max_body_size`) and of many proxies.
 */
export const BATCH_BYTES = 960 * 1024;

/**
 * Parcels in batches for `transfers` side by side: as many batches as that when there are enough
 * parcels, each of at most BATCH_PARCELS parcels and BATCH_BYTES bytes (`sizeOf` a parcel; a
 * parcel larger than that alone); the order is kept.
 */
export function batchesOf<T>(parcels: readonly T[], transfers: number, sizeOf: (parcel: T) => number): T[][] {
  const most = Math.max(1, Math.min(BATCH_PARCELS, Math.ceil(parcels.length / Math.max(1, transfers))));
  const batches: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const parcel of parcels) {
    const size = sizeOf(parcel);
    if (batch.length > 0 && (batch.length >= most || bytes + size > BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(parcel);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
