/**
 * Codec: every fixture invoice parses, validates and round-trips TOML → model → TOML → model
 * and JSON; key files likewise; schema errors carry the field path and reason; the TOML writer
 * emits what reference clients parse (plain integers, labels with origin AND tables).
 */
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import TOML from '@iarna/toml';
import type { Invoice } from '../../schema/index.js';
import { parseInvoice, renderInvoice, canonicalInvoice, toInvoice } from '../../core/codec/invoice-codec.js';
import { parseKeyRing, parseSecretKeyFile, renderKeyRing, renderSecretKeyFile } from '../../core/codec/key-file-codec.js';
import { parseDocument, renderDocument } from '../../core/codec/document-codec.js';
import { writeToml } from '../../core/codec/toml-writer.js';
import { SIGNED_SCAFFOLDS, VECTOR_SETS, vec, type VectorSet } from '../helpers/paths.js';

/** The invoice files of a vector set. */
function invoiceFixtures(set: VectorSet): string[] {
  const standaloneId = readdirSync(set.path('data', 'standalone')).find((f) => !f.endsWith('.tar.gz')) ?? '';
  return [
    'data/simple-invoice.toml',
    'data/full-invoice.toml',
    'data/alt-format-invoice.toml',
    `data/standalone/${standaloneId}/invoice.toml`,
    ...SIGNED_SCAFFOLDS.map((s) => `scaffolds/${s}/invoice.toml`),
  ];
}

for (const set of VECTOR_SETS) t.test(`fixture invoices parse, validate and round-trip (${set.name} vectors)`, { skip: set.skip }, async (t) => {
  for (const f of invoiceFixtures(set)) {
    const text = readFileSync(set.path(f), 'utf8');
    const model = parseInvoice(text, 'toml');
    const reference = TOML.parse(text) as unknown as Invoice;
    t.same(model, JSON.parse(JSON.stringify(reference)), `${f}: model equals what a generic TOML parser reads`);
    const toml = renderInvoice(model, 'toml');
    const fromToml = parseInvoice(toml, 'toml');
    t.same(fromToml, canonicalInvoice(model), `${f}: TOML round trip`);
    t.equal(renderInvoice(fromToml, 'toml'), toml, `${f}: rendering is stable`);
    const json = renderInvoice(model, 'json');
    t.same(parseInvoice(json, 'json'), canonicalInvoice(model), `${f}: JSON round trip`);
    t.notMatch(json, /null/, `${f}: JSON omits absent fields`);
  }
});

t.test('the full invoice keeps groups and conditions', async (t) => {
  const inv = parseInvoice(readFileSync(vec('data/full-invoice.toml'), 'utf8'));
  t.same(inv.group?.map((g) => [g.name, g.satisfiedBy, g.required]), [
    ['server', 'allOf', undefined], ['cli', 'oneOf', true], ['utility', 'optional', undefined],
  ]);
  t.same(inv.parcel?.[0]?.conditions, { memberOf: ['server'], requires: ['utility'] });
});

t.test('labels with origin and annotations and features', async (t) => {
  const inv: Invoice = {
    bindleVersion: '1.0.0',
    bindle: { name: 'x', version: '1.0.0' },
    parcel: [{
      label: {
        sha256: 'ab', mediaType: 'application/wasm', name: 'm.wasm', size: 1643927146,
        annotations: { 'weird key': 'q"uote\\back\nline' }, feature: { wasm: { type: 'entrypoint' } }, origin: 'from here',
      },
    }],
  };
  const toml = renderInvoice(inv);
  t.match(toml, /\nsize = 1643927146\n/, 'integers are written plainly');
  t.match(toml, /\norigin = "from here"\n\n\[parcel\.label\.annotations\]/, 'origin is written inside the label, before its tables');
  t.same(TOML.parse(toml), JSON.parse(JSON.stringify(inv)), 'a generic TOML parser reads the same document');
  t.same(parseInvoice(toml), inv);
});

t.test('precise validation messages', async (t) => {
  const base = readFileSync(vec('data/simple-invoice.toml'), 'utf8');
  t.throws(() => parseInvoice(`${base}\nbogus = 1\n`), { code: 'invalid_invoice', message: /bogus: unknown field/ });
  t.throws(() => parseInvoice(base.replace('label.size = 248098', 'label.size = "big"')), {
    code: 'invalid_invoice', message: /parcel\[0\]\.label\.size: must be integer/,
  });
  t.throws(() => parseInvoice(base.replace('version = "0.1.0"', 'version = "v0.1.0"')), { code: 'invalid_version' });
  t.throws(() => parseInvoice(base.replace('name = "mybindle"', 'name = "../up"')), { code: 'invalid_name' });
  t.throws(() => parseInvoice(base.replace('bindleVersion = "1.0.0"', 'bindleVersion = "2.0.0"')), {
    code: 'invalid_invoice', message: /bindleVersion: must be "1.0.0"/,
  });
  t.throws(() => parseInvoice('name = '), { code: 'malformed_body', message: /^invalid TOML: / });
  // One line, without the colon @iarna/toml puts before its excerpt of the document.
  t.throws(() => parseInvoice('garbage = ['), { code: 'malformed_body', message: /^invalid TOML: Unterminated inline array at row 1, col 13, pos 12$/ });
  t.throws(() => parseInvoice('{', 'json'), { code: 'malformed_body', message: /^invalid JSON: / });
  t.throws(() => toInvoice({ bindleVersion: '1.0.0' }), { code: 'invalid_invoice', message: /bindle: missing required field/ });
  t.throws(() => parseInvoice(base.replace('label.size = 248098', 'label.size = 99999999999999999999')), { code: /invalid_invoice|malformed_body/ });
});

for (const set of VECTOR_SETS) t.test(`key files round-trip (${set.name} vectors)`, { skip: set.skip }, async (t) => {
  for (const f of ['data/keyring.toml', 'scaffolds/keys/keyring.toml']) {
    const text = readFileSync(set.path(f), 'utf8');
    const ring = parseKeyRing(text);
    t.equal(ring.key?.length, 1, f);
    t.same(parseKeyRing(renderKeyRing(ring)), ring);
    t.same(parseKeyRing(renderKeyRing(ring, 'json'), 'json'), ring);
  }
  for (const f of ['data/secret_keys.toml', 'scaffolds/keys/secret_keys.toml']) {
    const file = parseSecretKeyFile(readFileSync(set.path(f), 'utf8'));
    t.same(parseSecretKeyFile(renderSecretKeyFile(file)), file, f);
  }
  t.throws(() => parseKeyRing('version = "1.0"\n[[key]]\nlabel = "x"\n'), { code: 'invalid_key_file', message: /key\[0\]\.roles: missing required field/ });
});

t.test('wire replies render and validate', async (t) => {
  const reply = { query: 'q', strict: false, offset: 0, limit: 50, total: 0, more: false, yanked: false, timestamp: 1, invoices: [] };
  t.same(parseDocument('QueryReply', renderDocument(reply, 'toml'), 'toml'), reply);
  t.same(parseDocument('ErrorReply', renderDocument({ error: 'x', code: 'not_found' }, 'json'), 'json'), { error: 'x', code: 'not_found' });
  t.throws(() => parseDocument('ErrorReply', '{"error": "x", "code": "nope"}', 'json'), { message: /code: must be one of/ });
});

t.test('the TOML writer escapes and refuses what TOML cannot hold', async (t) => {
  const text = writeToml({ 'a.b': 'tab\there', ctl: '\u0001', list: ['x', 'y'], nested: { deep: { v: true } } });
  t.same(TOML.parse(text), { 'a.b': 'tab\there', ctl: '\u0001', list: ['x', 'y'], nested: { deep: { v: true } } });
  t.throws(() => writeToml({ f: 1.5 }), TypeError);
});
