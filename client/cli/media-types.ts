/**
 * Guessing a parcel's media type from its file name, for `generate-label` and `push-file`
 * when no `--media-type` is given: the `mime-types` database (IANA, Apache and nginx types, the
 * one web servers and npm tooling use), loaded on first use so that commands that label nothing
 * never read it. Unknown extensions are `application/octet-stream`, as in
 * the reference.
 */
export const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

/** The media type for `path` by its extension (case-insensitive), else `application/octet-stream`. */
export async function guessMediaType(path: string): Promise<string> {
  // A CommonJS package: its exports object is the namespace's default, bundled or not.
  const { default: mime } = await import('mime-types');
  return mime.lookup(path) || DEFAULT_MEDIA_TYPE;
}
