/**
 * A small, strict TOML emitter for the Bindle data model: strings, safe integers, booleans,
 * arrays of scalars, tables and arrays of tables. Scalars of a table are written before its
 * sub-tables (so a label's `origin` lands in the label, which the reference gets wrong), keys
 * keep their insertion order, and integers are written plainly (`at = 1643927146`).
 */

type Scalar = string | number | boolean;

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTableArray(v: unknown): v is Record<string, unknown>[] {
  return Array.isArray(v) && v.length > 0 && v.every(isTable);
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

export function tomlKey(key: string): string {
  return BARE_KEY.test(key) ? key : tomlString(key);
}

export function tomlString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

function scalar(value: Scalar, where: string): string {
  if (typeof value === 'string') return tomlString(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Number.isSafeInteger(value)) return String(value);
  throw new TypeError(`cannot write ${where} as TOML: ${String(value)} is not a safe integer`);
}

function inlineValue(value: unknown, where: string): string {
  if (Array.isArray(value)) return `[${value.map((v, i) => inlineValue(v, `${where}[${i}]`)).join(', ')}]`;
  if (isTable(value)) {
    const parts = Object.entries(value)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${tomlKey(k)} = ${inlineValue(v, `${where}.${k}`)}`);
    return `{ ${parts.join(', ')} }`;
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return scalar(value, where);
  throw new TypeError(`cannot write ${where} as TOML: unsupported value`);
}

function writeTable(lines: string[], path: string[], table: Record<string, unknown>, header: string | undefined): void {
  const entries = Object.entries(table).filter(([, v]) => v !== undefined && v !== null);
  const scalars = entries.filter(([, v]) => !isTable(v) && !isTableArray(v));
  const tables = entries.filter(([, v]) => isTable(v));
  const tableArrays = entries.filter(([, v]) => isTableArray(v));
  if (header !== undefined) {
    if (lines.length > 0) lines.push('');
    lines.push(header);
  }
  for (const [k, v] of scalars) lines.push(`${tomlKey(k)} = ${inlineValue(v, [...path, k].join('.'))}`);
  for (const [k, v] of tables) {
    const sub = [...path, k];
    writeTable(lines, sub, v as Record<string, unknown>, `[${sub.map(tomlKey).join('.')}]`);
  }
  for (const [k, v] of tableArrays) {
    const sub = [...path, k];
    for (const item of v as Record<string, unknown>[]) {
      writeTable(lines, sub, item, `[[${sub.map(tomlKey).join('.')}]]`);
    }
  }
}

/** Renders a plain object as a TOML document ending in a newline. */
export function writeToml(document: Record<string, unknown>): string {
  const lines: string[] = [];
  writeTable(lines, [], document, undefined);
  return `${lines.join('\n')}\n`;
}
