/**
 * The compiled validator of each schema, compiled by Ajv at run time on first use from
 * ./schemas.ts: what the tests and the scripts run. Both bundles, the server's and the client's
 * (scripts/standalone-validators-plugin.mjs), put in this module's place the same validators
 * compiled ahead of time by Ajv's standalone code generation (./standalone-validators.ts), so
 * that neither a `bindle` command nor the server loads Ajv or compiles a schema.
 */
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import type { SchemaName } from './index.js';
import { ALL_SCHEMAS, SCHEMA_FORMATS, SCHEMA_IDS } from './schemas.js';

/** A compiled validator: true when the value matches the schema; else `errors` holds why. */
export type SchemaValidator = ((value: unknown) => boolean) & Pick<ValidateFunction, 'errors'>;

/** The options of every compile of the schemas, at run time and ahead of time. */
const AJV_OPTIONS = { allErrors: true, strict: true, allowUnionTypes: true, validateSchema: false } as const satisfies Options;

/** An Ajv holding every schema and custom format, with the schemas' options plus `extra` (e.g. code generation). */
export function createSchemaAjv(extra: Options = {}): Ajv {
  // The schemas are checked against the meta-schema by test/unit/schemas.test.ts, not at every start-up.
  const ajv = new Ajv({ ...AJV_OPTIONS, ...extra });
  for (const [name, format] of Object.entries(SCHEMA_FORMATS)) ajv.addFormat(name, format);
  for (const schema of ALL_SCHEMAS) ajv.addSchema(schema);
  return ajv;
}

let ajv: Ajv | undefined;
const compiled = new Map<SchemaName, SchemaValidator>();

/** The validator of the schema titled `name`, compiled on first use. */
export function validatorFor(name: SchemaName): SchemaValidator {
  let fn = compiled.get(name);
  if (fn === undefined) {
    const id = SCHEMA_IDS.get(name);
    ajv ??= createSchemaAjv();
    fn = id === undefined ? undefined : ajv.getSchema(id);
    if (fn === undefined) throw new Error(`no schema titled ${name}`);
    compiled.set(name, fn);
  }
  return fn;
}
