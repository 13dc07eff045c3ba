// The JSON Schemas of schema/*.schema.json as the generators read them (gen-schema-types.mjs,
// gen-openapi.mjs): by file name, and with cross-file $refs rewritten to a local location.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const schemaDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'schema');

/** Every schema file's parsed schema, by file name, in file-name order. */
export function readSchemas() {
  const files = readdirSync(schemaDir).filter((f) => f.endsWith('.schema.json')).sort();
  return new Map(files.map((f) => [f, JSON.parse(readFileSync(join(schemaDir, f), 'utf8'))]));
}

/**
 * A copy of `node` without `$id`/`$schema`, whose cross-file $refs ("label.schema.json") point
 * to `refBase + title` (e.g. "#/definitions/Label"), so nothing outside the document is resolved.
 */
export function localizeRefs(node, byFile, refBase) {
  if (Array.isArray(node)) return node.map((n) => localizeRefs(n, byFile, refBase));
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$ref' && typeof v === 'string' && byFile.has(v)) out[k] = `${refBase}${byFile.get(v).title}`;
    else if (k === '$id' || k === '$schema') continue;
    else out[k] = localizeRefs(v, byFile, refBase);
  }
  return out;
}
