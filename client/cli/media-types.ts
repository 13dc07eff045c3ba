/**
 * Guessing a parcel's media type from its file name, for `generate-label` and `push-file`
 * when no `--media-type` is given. Unknown extensions are `application/octet-stream`, as in
 * the reference.
 */
import { extname } from 'node:path';

export const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

const BY_EXTENSION: ReadonlyMap<string, string> = new Map([
  ['.txt', 'text/plain'],
  ['.text', 'text/plain'],
  ['.md', 'text/markdown'],
  ['.html', 'text/html'],
  ['.htm', 'text/html'],
  ['.css', 'text/css'],
  ['.csv', 'text/csv'],
  ['.js', 'application/javascript'],
  ['.mjs', 'application/javascript'],
  ['.json', 'application/json'],
  ['.toml', 'application/toml'],
  ['.yaml', 'application/yaml'],
  ['.yml', 'application/yaml'],
  ['.xml', 'application/xml'],
  ['.wasm', 'application/wasm'],
  ['.pdf', 'application/pdf'],
  ['.zip', 'application/zip'],
  ['.gz', 'application/gzip'],
  ['.tgz', 'application/gzip'],
  ['.tar', 'application/x-tar'],
  ['.png', 'image/png'],
  ['.jpg', 'image/jpeg'],
  ['.jpeg', 'image/jpeg'],
  ['.gif', 'image/gif'],
  ['.svg', 'image/svg+xml'],
  ['.webp', 'image/webp'],
  ['.ico', 'image/x-icon'],
  ['.mp4', 'video/mp4'],
  ['.mp3', 'audio/mpeg'],
  ['.woff', 'font/woff'],
  ['.woff2', 'font/woff2'],
  ['.sh', 'application/x-sh'],
]);

/** The media type for `path` by its extension (case-insensitive), else `application/octet-stream`. */
export function guessMediaType(path: string): string {
  return BY_EXTENSION.get(extname(path).toLowerCase()) ?? DEFAULT_MEDIA_TYPE;
}
