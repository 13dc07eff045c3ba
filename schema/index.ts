/**
 * The JSON Schemas of the Bindle data model and wire replies, compiled once, and a validator
 * per schema that reports every problem as a field path plus a reason. The TypeScript types in
 * ./types.ts are generated from the same files (`npm run gen:types`).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import accessControlList from './access-control-list.schema.json' with { type: 'json' };
import annotations from './annotations.schema.json' with { type: 'json' };
import bindleSpec from './bindle-spec.schema.json' with { type: 'json' };
import condition from './condition.schema.json' with { type: 'json' };
import errorCode from './error-code.schema.json' with { type: 'json' };
import errorReply from './error-reply.schema.json' with { type: 'json' };
import featureMap from './feature-map.schema.json' with { type: 'json' };
import group from './group.schema.json' with { type: 'json' };
import healthReply from './health-reply.schema.json' with { type: 'json' };
import invoiceCreateReply from './invoice-create-reply.schema.json' with { type: 'json' };
import invoice from './invoice.schema.json' with { type: 'json' };
import keyEntry from './key-entry.schema.json' with { type: 'json' };
import keyring from './keyring.schema.json' with { type: 'json' };
import label from './label.schema.json' with { type: 'json' };
import messageReply from './message-reply.schema.json' with { type: 'json' };
import missingReply from './missing-reply.schema.json' with { type: 'json' };
import parcel from './parcel.schema.json' with { type: 'json' };
import queryReply from './query-reply.schema.json' with { type: 'json' };
import readinessReply from './readiness-reply.schema.json' with { type: 'json' };
import secretKeyEntry from './secret-key-entry.schema.json' with { type: 'json' };
import secretKeyFile from './secret-key-file.schema.json' with { type: 'json' };
import signatureRole from './signature-role.schema.json' with { type: 'json' };
import signature from './signature.schema.json' with { type: 'json' };
import type * as T from './types.js';
import { isMediaType, MEDIA_TYPE_RULE } from '../core/ids/media-type.js';

export type * from './types.js';

/** Every schema, each with its `$id`; e.g. for `fastify.addSchema`. */
export const ALL_SCHEMAS = [
  accessControlList, annotations, bindleSpec, condition, errorCode, errorReply, featureMap, group, healthReply,
  invoiceCreateReply, invoice, keyEntry, keyring, label, messageReply, missingReply, parcel,
  queryReply, readinessReply, secretKeyEntry, secretKeyFile, signatureRole, signature,
] as const;

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
  QueryReply: T.QueryReply;
  ErrorReply: T.ErrorReply;
  MessageReply: T.MessageReply;
  HealthReply: T.HealthReply;
  ReadinessReply: T.ReadinessReply;
  AccessControlList: T.AccessControlList;
}
export type SchemaName = keyof SchemaTypes;

// The schemas are checked against the meta-schema by test/unit/schemas.test.ts, not at every start-up.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, validateSchema: false });
/** The custom `format`s the schemas use; any Ajv that compiles them must add these. */
export const SCHEMA_FORMATS = { 'media-type': { type: 'string', validate: isMediaType } } as const;
for (const [name, format] of Object.entries(SCHEMA_FORMATS)) ajv.addFormat(name, format);
for (const schema of ALL_SCHEMAS) ajv.addSchema(schema);

/** What each custom `format` asks for, in words. */
const FORMAT_RULES: Readonly<Record<string, string>> = { 'media-type': MEDIA_TYPE_RULE };

const byTitle = new Map<string, string>(ALL_SCHEMAS.map((s) => [s.title, s.$id]));
const compiled = new Map<SchemaName, ValidateFunction>();

function validatorFor(name: SchemaName): ValidateFunction {
  let fn = compiled.get(name);
  if (fn === undefined) {
    const id = byTitle.get(name);
    fn = id === undefined ? undefined : ajv.getSchema(id);
    if (fn === undefined) throw new Error(`no schema titled ${name}`);
    compiled.set(name, fn);
  }
  return fn;
}

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
