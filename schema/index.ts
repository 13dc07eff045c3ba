/**
 * The JSON Schemas of the Bindle data model and wire replies (./schemas.ts), and validation
 * against them that reports every problem as a field path plus a reason (the compiled
 * validators are ./validators.ts's). The TypeScript types in ./types.ts are generated from the
 * same files (`npm run gen:types`).
 */
import { MEDIA_TYPE_RULE } from '../core/ids/media-type.js';
import type { ErrorObject } from 'ajv';
import type * as T from './types.js';
import { validatorFor } from './validators.js';

export type * from './types.js';
export { ALL_SCHEMAS, SCHEMA_FORMATS } from './schemas.js';

/** The documents that can be validated, by schema title, with their generated type. */
export interface SchemaTypes {
  Invoice: T.Invoice;
  Label: T.Label;
  Parcel: T.Parcel;
  Group: T.Group;
  Condition: T.Condition;
  Signature: T.Signature;
  BindleSpec: T.BindleSpec;
  KeyRing: T.KeyRing;
  KeyEntry: T.KeyEntry;
  SecretKeyFile: T.SecretKeyFile;
  SecretKeyEntry: T.SecretKeyEntry;
  InvoiceCreateReply: T.InvoiceCreateReply;
  MissingReply: T.MissingReply;
  ParcelBatchReply: T.ParcelBatchReply;
  QueryReply: T.QueryReply;
  ErrorReply: T.ErrorReply;
  MessageReply: T.MessageReply;
  HealthReply: T.HealthReply;
  ReadinessReply: T.ReadinessReply;
  AccessControlList: T.AccessControlList;
}
export type SchemaName = keyof SchemaTypes;

/** What each custom `format` asks for, in words. */
const FORMAT_RULES: Readonly<Record<string, string>> = { 'media-type': MEDIA_TYPE_RULE };

/** One validation problem: where (a dotted path, `(root)` for the document) and why. */
export interface SchemaIssue {
  path: string;
  reason: string;
}

function pathOf(instancePath: string): string {
  if (instancePath === '') return '';
  return instancePath
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc === '' ? part : `${acc}.${part}`), '');
}

function join(base: string, key: string): string {
  return base === '' ? key : `${base}.${key}`;
}

function toIssue(e: ErrorObject): SchemaIssue {
  const base = pathOf(e.instancePath);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: join(base, String(params.additionalProperty)), reason: 'unknown field' };
    case 'required':
      return { path: join(base, String(params.missingProperty)), reason: 'missing required field' };
    case 'enum':
      return { path: base || '(root)', reason: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'format':
      return { path: base || '(root)', reason: `must be ${FORMAT_RULES[String(params.format)] ?? `a ${String(params.format)}`}` };
    case 'const':
      return { path: base || '(root)', reason: `must be ${JSON.stringify(params.allowedValue)}` };
    default:
      return { path: base || '(root)', reason: e.message ?? e.keyword };
  }
}

/** Validates `value` against the named schema; returns the problems (empty when valid). */
export function schemaIssues(name: SchemaName, value: unknown): SchemaIssue[] {
  const fn = validatorFor(name);
  if (fn(value)) return [];
  const seen = new Set<string>();
  const issues: SchemaIssue[] = [];
  for (const e of fn.errors ?? []) {
    const issue = toIssue(e);
    const key = `${issue.path}\u0000${issue.reason}`;
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

/** Type guard form of schemaIssues. */
export function isValid<N extends SchemaName>(name: N, value: unknown): value is SchemaTypes[N] {
  return validatorFor(name)(value);
}

/** The most problems formatIssues spells out; a hostile document's error reply stays small. */
export const MAX_LISTED_ISSUES = 20;

/**
 * Formats problems as one line: `parcel[0].label.size: must be integer; bindle.name: missing
 * required field`; past MAX_LISTED_ISSUES, the rest are counted (`… and 7 more problems`).
 */
export function formatIssues(issues: readonly SchemaIssue[]): string {
  const listed = issues.slice(0, MAX_LISTED_ISSUES).map((i) => `${i.path}: ${i.reason}`).join('; ');
  const more = issues.length - MAX_LISTED_ISSUES;
  return more > 0 ? `${listed}; … and ${more} more problems` : listed;
}
