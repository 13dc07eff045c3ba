/**
 * The validators the client bundle carries, compiled ahead of time by Ajv's standalone code
 * generation (schema/standalone-validators.ts), agree with the ones compiled at run time
 * (schema/validators.ts): for every schema, on the fixture documents and on many invalid
 * variants of them (each field removed, replaced by a value of another type, an unknown field
 * added), the same verdict and the same errors.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { runInThisContext } from 'node:vm';
import type { SchemaName } from '../../schema/index.js';
import { SCHEMA_FORMATS, SCHEMA_IDS } from '../../schema/schemas.js';
import { standaloneValidatorsSource } from '../../schema/standalone-validators.js';
import { validatorFor, type SchemaValidator } from '../../schema/validators.js';
import { parseSyntax } from '../../core/codec/document-codec.js';
import { OWN_SET, SIGNED_SCAFFOLDS } from '../helpers/paths.js';

/** Loads the generated CommonJS source as Node would, its `require` of ./schemas.ts answered with SCHEMA_FORMATS. */
function loadStandalone(): (name: SchemaName) => SchemaValidator {
  const source = standaloneValidatorsSource('schemas-module');
  const requireFromHere = createRequire(import.meta.url);
  const require = (id: string): unknown => (id === 'schemas-module' ? { SCHEMA_FORMATS } : requireFromHere(id));
  const module = { exports: {} as { validatorFor?: (name: SchemaName) => SchemaValidator } };
  const wrapper = runInThisContext(`(function (require, module, exports) {${source}\n})`) as (r: typeof require, m: typeof module, e: object) => void;
  wrapper(require, module, module.exports);
  const fn = module.exports.validatorFor;
  if (fn === undefined) throw new Error('the generated module exports no validatorFor');
  return fn;
}

/** Values of other types (and edge strings) to put in place of a field. */
const REPLACEMENTS: readonly unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, '', 'x', 'text/plain', 'not a media type', '😀'.repeat(3), [], ['x'], {}, { a: 1 }];

/** The document with the value at `path` replaced by `value` (undefined: removed). */
function withAt(doc: unknown, path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (Array.isArray(doc)) {
    const copy: unknown[] = (doc as unknown[]).slice();
    if (value === undefined && rest.length === 0) copy.splice(Number(head), 1);
    else copy[Number(head)] = withAt(copy[Number(head)], rest, value);
    return copy;
  }
  const entries = Object.entries(doc as Record<string, unknown>);
  if (value === undefined && rest.length === 0) return Object.fromEntries(entries.filter(([k]) => k !== String(head)));
  return Object.fromEntries([...entries.filter(([k]) => k !== String(head)), [String(head), withAt((doc as Record<string, unknown>)[String(head)], rest, value)]]);
}

/** Every path in a document (objects and arrays below the root). */
function pathsOf(doc: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(doc)) return doc.flatMap((v, i) => [[...at, i], ...pathsOf(v, [...at, i])]);
  if (doc !== null && typeof doc === 'object') return Object.entries(doc).flatMap(([k, v]) => [[...at, k], ...pathsOf(v, [...at, k])]);
  return [];
}

/** The document and its invalid variants. */
function variantsOf(doc: unknown): unknown[] {
  const out: unknown[] = [doc, ...REPLACEMENTS];
  for (const path of pathsOf(doc)) {
    out.push(withAt(doc, path, undefined));
    for (const value of REPLACEMENTS) out.push(withAt(doc, path, value));
  }
  for (const path of [[], ...pathsOf(doc)]) {
    const target = path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], doc);
    if (target !== null && typeof target === 'object' && !Array.isArray(target)) out.push(withAt(doc, path, { ...target, unknownField: 1 }));
  }
  return out;
}

const read = (f: string): unknown => parseSyntax(readFileSync(OWN_SET.path(f), 'utf8'), 'toml');
const invoice = read('data/full-invoice.toml');
const keyring = read('data/keyring.toml');
const label = (invoice as { parcel: Array<{ label: unknown }> }).parcel[0]?.label;
const documents: Readonly<Record<string, readonly unknown[]>> = {
  Invoice: [invoice, read('data/simple-invoice.toml'), ...SIGNED_SCAFFOLDS.slice(0, 2).map((s) => read(`scaffolds/${s}/invoice.toml`))],
  KeyRing: [keyring],
  SecretKeyFile: [read('data/secret_keys.toml')],
  InvoiceCreateReply: [{ invoice, missing: [label] }, { invoice }],
  MissingReply: [{ missing: [label] }],
  ErrorReply: [{ error: 'no such bindle', code: 'not_found' }],
  MessageReply: [{ message: 'parcel created' }],
  HealthReply: [{ status: 'OK', version: '0.1.0' }],
  QueryReply: [{ query: 'x', strict: true, offset: 0, limit: 50, total: 1, more: false, yanked: false, invoices: [invoice] }],
};

t.test('the validators compiled ahead of time agree with the run-time ones', async (t) => {
  const standalone = loadStandalone();
  const names = [...SCHEMA_IDS.keys()] as SchemaName[];
  const all = Object.values(documents).flatMap((docs) => docs.flatMap(variantsOf));
  let checked = 0;
  let valid = 0;
  for (const name of names) {
    const ahead = standalone(name);
    const runtime = validatorFor(name);
    t.not(ahead, runtime, `${name}: two different functions`);
    const own = (documents[name] ?? []).flatMap(variantsOf);
    for (const doc of name in documents ? own : all) {
      const expected = runtime(doc);
      const expectedErrors = runtime.errors;
      const got = ahead(doc);
      if (got !== expected) t.fail(`${name}: verdict differs on ${JSON.stringify(doc).slice(0, 200)}`);
      else if (JSON.stringify(ahead.errors) !== JSON.stringify(expectedErrors)) t.same(ahead.errors, expectedErrors, `${name}: errors differ on ${JSON.stringify(doc).slice(0, 200)}`);
      checked += 1;
      if (expected) valid += 1;
    }
  }
  t.ok(checked > 10_000, `${checked} documents checked`);
  t.ok(valid > 20 && checked - valid > 10_000, `${valid} of them valid, ${checked - valid} invalid`);
  t.throws(() => standalone('Nonexistent' as SchemaName), { message: 'no schema titled Nonexistent' });
  t.throws(() => validatorFor('Nonexistent' as SchemaName), { message: 'no schema titled Nonexistent' });
});
