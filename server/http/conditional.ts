/**
 * RFC 9110 §13 conditional requests for GET and HEAD of parcels and invoices: If-Match
 * (strong comparison), If-None-Match (weak comparison, `*` and lists), If-Range (strong
 * comparison; a mismatch means the whole representation, 200). Representations here carry an
 * entity tag and no Last-Modified date (a parcel's bytes never change and an invoice's tag is
 * derived from its stored bytes, so tags agree across replicas), so If-Modified-Since and
 * If-Unmodified-Since have nothing to compare with and are ignored, as §13.1.3/§13.1.4 allow.
 */
import { BindleError } from '../../core/errors/bindle-error.js';

/** One entity tag from a header: its opaque part (with quotes) and whether it was weak. */
interface EntityTag {
  readonly weak: boolean;
  readonly opaque: string;
}

/** `"…"` or `W/"…"`, separated by commas with optional whitespace (RFC 9110 §8.8.3). */
const TAG = /\s*(W\/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)/y;

/** The tags of an If-Match/If-None-Match/If-Range value; `*` for the wildcard; undefined when malformed. */
function parseTags(value: string): EntityTag[] | '*' | undefined {
  if (value.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  TAG.lastIndex = 0;
  while (TAG.lastIndex < value.length) {
    const start = TAG.lastIndex;
    const m = TAG.exec(value);
    if (m === null || TAG.lastIndex === start) return value.slice(start).trim() === '' ? tags : undefined;
    tags.push({ weak: m[1] !== undefined, opaque: m[2] ?? '' });
  }
  return tags;
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** What the preconditions of a GET or HEAD say: serve it, answer 304, or fail with 412. */
export type Precondition = 'proceed' | 'not_modified';

/**
 * Evaluates If-Match and If-None-Match (RFC 9110 §13.2.2, steps 1 and 3) for a GET or HEAD of a
 * representation whose strong entity tag is `etag` (quoted). Throws precondition_failed (412)
 * when If-Match matches nothing. A malformed list matches nothing.
 */
export function evaluatePreconditions(
  headers: { 'if-match'?: string | string[] | undefined; 'if-none-match'?: string | string[] | undefined },
  etag: string,
): Precondition {
  const ifMatch = header(headers['if-match']);
  if (ifMatch !== undefined) {
    const tags = parseTags(ifMatch);
    const matches = tags === '*' || (tags ?? []).some((t) => !t.weak && t.opaque === etag);
    if (!matches) throw new BindleError('precondition_failed', `If-Match ${JSON.stringify(ifMatch)} does not match the current entity tag ${etag}`);
  }
  const ifNoneMatch = header(headers['if-none-match']);
  if (ifNoneMatch !== undefined) {
    const tags = parseTags(ifNoneMatch);
    if (tags === '*' || (tags ?? []).some((t) => t.opaque === etag)) return 'not_modified';
  }
  return 'proceed';
}

/**
 * Whether a Range header may be honoured given If-Range (RFC 9110 §13.1.5): yes without
 * If-Range; with it, only when it is a strong tag equal to `etag` (a date never matches: no
 * Last-Modified is sent). Otherwise the whole representation is sent with 200.
 */
export function rangeApplies(ifRange: string | string[] | undefined, etag: string): boolean {
  if (ifRange === undefined) return true;
  const value = header(ifRange)?.trim() ?? '';
  return !value.startsWith('W/') && value === etag;
}
