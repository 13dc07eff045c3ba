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
 * The deepest nesting of `[`/`{` in TOML or JSON text outside strings and comments, stopping as
 * soon as it exceeds `limit`. One linear pass: cheap next to a parser's cost on hostile input
 * (@iarna/toml takes seconds on a megabyte of nested arrays). TOML table headers count as 1-2.
 */
export function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const triple = text.startsWith(c.repeat(3), i);
      const close = triple ? c.repeat(3) : c;
      i += close.length;
      while (i < n && !text.startsWith(close, i)) i += c === '"' && text[i] === '\\' ? 2 : 1;
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
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
    }
    i += 1;
  }
  return max;
}

/**
 * Parses text in the given syntax, without schema validation. With `bounded` (request bodies),
 * text nested deeper than MAX_NESTING is malformed_body before any parser sees it.
 */
export function parseSyntax(text: string, format: DocumentFormat, opts: { bounded?: boolean } = {}): unknown {
  if (opts.bounded === true && nestingDepth(text, MAX_NESTING) > MAX_NESTING) {
    throw new BindleError('malformed_body', `invalid ${format.toUpperCase()}: arrays or tables are nested deeper than ${MAX_NESTING} levels`);
  }
  try {
    return format === 'toml' ? toPlain(TOML.parse(text)) : (JSON.parse(text) as unknown);
  } catch (err) {
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new BindleError('malformed_body', `invalid ${format.toUpperCase()}: ${detail}`, { cause: err });
  }
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
