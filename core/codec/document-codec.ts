/**
 * Parses and renders Bindle documents (invoices, key files, wire replies) as TOML or JSON,
 * validating every parsed document against its JSON Schema. Parse failures are
 * `malformed_body`; schema failures carry the field path and reason.
 */
import TOML from '@iarna/toml';
import { formatIssues, schemaIssues, type SchemaName, type SchemaTypes } from '../../schema/index.js';
import { BindleError, type ErrorCode } from '../errors/bindle-error.js';
import { writeToml } from './toml-writer.js';

export type DocumentFormat = 'toml' | 'json';

export const MEDIA_TYPE: Readonly<Record<DocumentFormat, string>> = {
  toml: 'application/toml',
  json: 'application/json',
};

/** Deep copy into plain objects and arrays, dropping TOML's symbol-keyed metadata. */
function toPlain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toPlain);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
    return out;
  }
  return value;
}

/** Deepest nesting of arrays and inline tables a bounded parse accepts (an invoice needs 3). */
export const MAX_NESTING = 64;

/**
 * Most keys plus array items a bounded parse accepts: a 10,000-parcel invoice with a dozen fields
 * per parcel fits; a body of hundreds of thousands of tiny keys does not reach the parser.
 */
export const MAX_ENTRIES = 200_000;

/** Longest string literal (in UTF-16 units, quotes excluded) a bounded parse accepts: 64 KiB. */
export const MAX_STRING_LENGTH = 64 * 1024;

/** What one pass over a document's text found; the pass stops as soon as a limit is passed. */
export interface StructureScan {
  /** Deepest nesting of `[`/`{` (TOML table headers count as 1-2). */
  readonly depth: number;
  /** Keys (`=` in TOML, `:` in JSON) plus separators between array items. */
  readonly entries: number;
  /** Length of the longest string literal. */
  readonly longestString: number;
}

/** Limits for scanStructure; a scan stops as soon as one is passed. */
export interface StructureLimits {
  readonly depth: number;
  readonly entries: number;
  readonly stringLength: number;
}

const NO_LIMITS: StructureLimits = { depth: Infinity, entries: Infinity, stringLength: Infinity };

/**
 * Measures TOML or JSON text in one linear pass outside strings and comments: cheap next to a
 * parser's cost on hostile input (@iarna/toml takes seconds on a megabyte of nested arrays or
 * 100k keys). Counts are exact until a limit is passed; then the pass stops and the count that
 * passed it is returned (one more than its limit at least).
 */
export function scanStructure(text: string, limits: StructureLimits = NO_LIMITS): StructureScan {
  let depth = 0;
  let max = 0;
  let entries = 0;
  let longestString = 0;
  const arrays: boolean[] = [];
  let i = 0;
  const n = text.length;
  const result = (): StructureScan => ({ depth: max, entries, longestString });
  while (i < n) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const triple = text.startsWith(c.repeat(3), i);
      const close = triple ? c.repeat(3) : c;
      i += close.length;
      const begin = i;
      while (i < n && !text.startsWith(close, i)) i += c === '"' && text[i] === '\\' ? 2 : 1;
      longestString = Math.max(longestString, Math.min(i, n) - begin);
      if (longestString > limits.stringLength) return result();
      i += close.length;
      continue;
    }
    if (c === '#') {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? n : eol;
      continue;
    }
    if (c === '[' || c === '{') {
      depth += 1;
      arrays.push(c === '[');
      if (depth > max) max = depth;
      if (max > limits.depth) return result();
    } else if (c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
      arrays.pop();
    } else if (c === '=' || c === ':' || (c === ',' && arrays.at(-1) === true)) {
      entries += 1;
      if (entries > limits.entries) return result();
    }
    i += 1;
  }
  return result();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The text of a TOML or JSON document given as bytes (a request body, a blob), which both
 * syntaxes require to be UTF-8: malformed_body when it is not, rather than replacing the bytes
 * that are not (which would keep something other than what was sent). A leading byte-order mark
 * is dropped, as JSON allows and as editors on some systems write one.
 */
export function decodeDocument(bytes: Uint8Array, format: DocumentFormat): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new BindleError('malformed_body', `invalid ${format.toUpperCase()}: the text is not valid UTF-8`);
  }
}

/** A UTF-16 surrogate that is not half of a pair: not Unicode text. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The first lone surrogate in a key or string of a parsed document (JSON's and TOML's `\u`
 * escapes can write one), as `\uXXXX`; undefined when every string is Unicode text. Walks
 * without recursion: an unbounded parse may nest deeper than the call stack.
 */
function loneSurrogate(document: unknown): string | undefined {
  const pending: unknown[] = [document];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      const found = LONE_SURROGATE.exec(value);
      if (found !== null) return `\\u${found[0].charCodeAt(0).toString(16)}`;
    } else if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
      for (const [key, item] of Object.entries(value)) pending.push(key, item);
    }
  }
  return undefined;
}

/** The deepest nesting of `[`/`{` outside strings and comments, stopping past `limit`. */
export function nestingDepth(text: string, limit: number): number {
  return scanStructure(text, { ...NO_LIMITS, depth: limit }).depth;
}

/**
 * Parses text in the given syntax, without schema validation. With `bounded` (request bodies),
 * text nested deeper than MAX_NESTING is malformed_body, and text with more than MAX_ENTRIES
 * keys and array items or a string longer than MAX_STRING_LENGTH is payload_too_large, before
 * any parser sees it. A key or string that is not Unicode text (a lone surrogate, written with
 * a `\u` escape) is malformed_body: no TOML document could hold it.
 */
export function parseSyntax(text: string, format: DocumentFormat, opts: { bounded?: boolean } = {}): unknown {
  if (opts.bounded === true) {
    const scan = scanStructure(text, { depth: MAX_NESTING, entries: MAX_ENTRIES, stringLength: MAX_STRING_LENGTH });
    const syntax = format.toUpperCase();
    if (scan.depth > MAX_NESTING) {
      throw new BindleError('malformed_body', `invalid ${syntax}: arrays or tables are nested deeper than ${MAX_NESTING} levels`);
    }
    if (scan.entries > MAX_ENTRIES) {
      throw new BindleError('payload_too_large', `${syntax} body has more than this server's limit of ${MAX_ENTRIES} keys and array items`);
    }
    if (scan.longestString > MAX_STRING_LENGTH) {
      throw new BindleError('payload_too_large', `${syntax} body has a string longer than this server's limit of ${MAX_STRING_LENGTH} characters`);
    }
  }
  let value: unknown;
  try {
    value = format === 'toml' ? toPlain(TOML.parse(text)) : (JSON.parse(text) as unknown);
  } catch (err) {
    throw new BindleError('malformed_body', `invalid ${format.toUpperCase()}: ${syntaxErrorSummary(err)}`, { cause: err });
  }
  const surrogate = loneSurrogate(value);
  if (surrogate !== undefined) {
    throw new BindleError('malformed_body', `invalid ${format.toUpperCase()}: a key or string holds ${surrogate}, half of a UTF-16 surrogate pair, which is not Unicode text`);
  }
  return value;
}

/**
 * A parser's error as one line for an error message: its first line, without the colon that
 * @iarna/toml ends it with before the excerpt of the document it prints on the next lines
 * ("Unterminated inline array at row 1, col 13, pos 12:").
 */
export function syntaxErrorSummary(err: unknown): string {
  const first = (err instanceof Error ? err.message : String(err)).split('\n', 1)[0] ?? '';
  return first.trimEnd().replace(/:$/, '');
}

/** Throws `code` with every schema problem unless `value` matches the named schema. */
export function validateDocument<N extends SchemaName>(
  name: N,
  value: unknown,
  code: ErrorCode = 'bad_request',
  what: string = name,
): SchemaTypes[N] {
  const issues = schemaIssues(name, value);
  if (issues.length > 0) throw new BindleError(code, `invalid ${what}: ${formatIssues(issues)}`);
  return value as SchemaTypes[N];
}

/** Parses and validates a document. */
export function parseDocument<N extends SchemaName>(
  name: N,
  text: string,
  format: DocumentFormat,
  code: ErrorCode = 'bad_request',
  what: string = name,
): SchemaTypes[N] {
  return validateDocument(name, parseSyntax(text, format), code, what);
}

/** Renders a document: TOML via the strict writer, JSON without absent fields. */
export function renderDocument(value: object, format: DocumentFormat): string {
  return format === 'toml' ? writeToml(value as Record<string, unknown>) : JSON.stringify(value);
}
