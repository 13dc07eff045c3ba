/**
 * Content negotiation (PROTOCOL.md §3): TOML by default; JSON when the first toml/json media
 * type in `Accept` that is not refused (`q=0`) is a JSON one (`application/json`, `text/json`, `application/json+bindle`,
 * `application/vnd.x+json`). Also decides the format of a request body from its Content-Type.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import type { DocumentFormat } from '../../core/codec/document-codec.js';

function formatOfMediaType(mediaType: string): DocumentFormat | undefined {
  const essence = mediaType.split(';')[0]?.trim().toLowerCase() ?? '';
  const slash = essence.indexOf('/');
  if (slash < 0) return undefined;
  const sub = essence.slice(slash + 1);
  const [subtype = '', suffix] = sub.split('+');
  if (subtype === 'toml' || suffix === 'toml') return 'toml';
  if (subtype === 'json' || suffix === 'json') return 'json';
  return undefined;
}

/** True when a media range's parameters say `q=0`: the client refuses it (RFC 9110 §12.4.2). */
function refused(mediaRange: string): boolean {
  const params = mediaRange.split(';').slice(1);
  return params.some((param) => {
    const [name = '', value = ''] = param.split('=');
    return name.trim().toLowerCase() === 'q' && Number(value.trim()) === 0;
  });
}

/** The reply format for an Accept header (a type the client refuses with `q=0` does not count). */
export function replyFormat(accept: string | undefined): DocumentFormat {
  if (accept === undefined) return 'toml';
  for (const item of accept.split(',')) {
    const format = formatOfMediaType(item);
    if (format !== undefined && !refused(item)) return format;
  }
  return 'toml';
}

/** The format of a request body: TOML or JSON by Content-Type; JSON when there is none. */
export function bodyFormat(contentType: string | undefined): DocumentFormat {
  if (contentType === undefined || contentType.trim() === '') return 'json';
  const format = formatOfMediaType(contentType);
  if (format === undefined) {
    throw new BindleError(
      'unsupported_media_type',
      `unsupported Content-Type ${JSON.stringify(contentType)}: send application/toml or application/json`,
    );
  }
  return format;
}

export const CONTENT_TYPE: Readonly<Record<DocumentFormat, string>> = {
  toml: 'application/toml',
  json: 'application/json',
};
