/**
 * Guessing a parcel's media type from its file name, for `generate-label` and `push-file`
 * when no `--media-type` is given: the `mime-types` database (IANA, Apache and nginx types, the
 * one web servers and npm tooling use). Unknown extensions are `application/octet-stream`, as in
 * the reference.
 */
import { lookup } from 'mime-types';

export const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

/** The media type for `path` by its extension (case-insensitive), else `application/octet-stream`. */
export function guessMediaType(path: string): string {
  return lookup(path) || DEFAULT_MEDIA_TYPE;
}
