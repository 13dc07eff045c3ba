/**
 * The JSON Schemas themselves: each has an `$id` and a title, is valid against the draft-07
 * meta-schema and compiles in strict mode (the runtime skips the meta-schema check to start
 * faster, so it happens here), and every reference fixture document validates.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { ALL_SCHEMAS, SCHEMA_FORMATS, schemaIssues } from '../../schema/index.js';
import { parseSyntax } from '../../core/codec/document-codec.js';
import { SIGNED_SCAFFOLDS, VECTOR_SETS } from '../helpers/paths.js';

t.test('every schema is valid, identified and compiles strictly', async (t) => {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, validateSchema: true });
  for (const [name, format] of Object.entries(SCHEMA_FORMATS)) ajv.addFormat(name, format);
  const ids = new Set<string>();
  for (const schema of ALL_SCHEMAS) {
    t.match(schema.$id, /^https:\/\/bindle\.invalid\/schema\/v1\/[a-z-]+\.schema\.json$/, `${schema.title} has an $id`);
    t.notOk(ids.has(schema.$id), `${schema.$id} is unique`);
    ids.add(schema.$id);
    t.ok(ajv.validateSchema(schema), `${schema.title} is a valid draft-07 schema: ${ajv.errorsText(ajv.errors)}`);
    ajv.addSchema(schema);
  }
  for (const schema of ALL_SCHEMAS) t.doesNotThrow(() => ajv.getSchema(schema.$id), `${schema.title} compiles`);
});

for (const set of VECTOR_SETS) t.test(`fixture documents validate (${set.name} vectors)`, { skip: set.skip }, async (t) => {
  const invoices = ['data/simple-invoice.toml', 'data/full-invoice.toml', 'data/alt-format-invoice.toml', ...SIGNED_SCAFFOLDS.map((s) => `scaffolds/${s}/invoice.toml`)];
  for (const f of invoices) t.same(schemaIssues('Invoice', parseSyntax(readFileSync(set.path(f), 'utf8'), 'toml')), [], f);
  for (const f of ['data/keyring.toml', 'scaffolds/keys/keyring.toml']) t.same(schemaIssues('KeyRing', parseSyntax(readFileSync(set.path(f), 'utf8'), 'toml')), [], f);
  for (const f of ['data/secret_keys.toml', 'scaffolds/keys/secret_keys.toml']) {
    t.same(schemaIssues('SecretKeyFile', parseSyntax(readFileSync(set.path(f), 'utf8'), 'toml')), [], f);
  }
});
