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

/** Parses text in the given syntax, without schema validation. */
export function parseSyntax(text: string, format: DocumentFormat): unknown {
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
