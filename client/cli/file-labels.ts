/**
 * Labels for local files (`generate-label`, `push-file`): the file is streamed once through
 * SHA-256 to get its digest and size; the name defaults to the file's base name and the media
 * type to a guess from its extension.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Label } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { guessMediaType } from './media-types.js';

/** A label describing the file at `path`. Throws the file-system error if it cannot be read, `bad_request` if it is not a file. */
export async function labelForFile(path: string, opts: { name?: string; mediaType?: string } = {}): Promise<Label> {
  const info = await stat(path);
  if (!info.isFile()) throw new BindleError('bad_request', `${path} is not a regular file`);
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
  }
  return {
    sha256: hash.digest('hex'),
    mediaType: opts.mediaType ?? (await guessMediaType(path)),
    name: opts.name ?? basename(path),
    size,
  };
}
