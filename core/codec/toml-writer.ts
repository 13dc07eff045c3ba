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

/** True when `value` has a character a basic string cannot hold as it is: a quote, a backslash or a control character. */
function needsEscape(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || code === 0x7f) return true;
  }
  return false;
}

export function tomlString(value: string): string {
  // Most strings (names, digests, keys) need no escape: skip the character walk.
  if (!needsEscape(value)) return `"${value}"`;
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

/** `where` names the value in error messages; it is only built when there is an error. */
function scalar(value: Scalar, where: () => string): string {
  if (typeof value === 'string') return tomlString(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Number.isSafeInteger(value)) return String(value);
  throw new TypeError(`cannot write ${where()} as TOML: ${String(value)} is not a safe integer`);
}

function inlineValue(value: unknown, where: () => string): string {
  if (Array.isArray(value)) return `[${value.map((v, i) => inlineValue(v, () => `${where()}[${i}]`)).join(', ')}]`;
  if (isTable(value)) {
    const parts = Object.entries(value)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${tomlKey(k)} = ${inlineValue(v, () => `${where()}.${k}`)}`);
    return `{ ${parts.join(', ')} }`;
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return scalar(value, where);
  throw new TypeError(`cannot write ${where()} as TOML: unsupported value`);
}

/**
 * Writes `table` (scalars, then sub-tables, then arrays of tables) under `header`. `path` holds
 * the raw keys (for error messages), `headerPath` the same keys as written in headers.
 */
function writeTable(lines: string[], path: string[], headerPath: string, table: Record<string, unknown>, header: string | undefined): void {
  const tables: string[] = [];
  const tableArrays: string[] = [];
  if (header !== undefined) {
    if (lines.length > 0) lines.push('');
    lines.push(header);
  }
  for (const k of Object.keys(table)) {
    const v = table[k];
    if (v === undefined || v === null) continue;
    if (isTable(v)) tables.push(k);
    else if (isTableArray(v)) tableArrays.push(k);
    else lines.push(`${tomlKey(k)} = ${inlineValue(v, () => [...path, k].join('.'))}`);
  }
  for (const k of tables) {
    const sub = headerPath === '' ? tomlKey(k) : `${headerPath}.${tomlKey(k)}`;
    writeTable(lines, [...path, k], sub, table[k] as Record<string, unknown>, `[${sub}]`);
  }
  for (const k of tableArrays) {
    const sub = headerPath === '' ? tomlKey(k) : `${headerPath}.${tomlKey(k)}`;
    const itemHeader = `[[${sub}]]`;
    const subPath = [...path, k];
    for (const item of table[k] as Record<string, unknown>[]) writeTable(lines, subPath, sub, item, itemHeader);
  }
}

/** Renders a plain object as a TOML document ending in a newline. */
export function writeToml(document: Record<string, unknown>): string {
  const lines: string[] = [];
  writeTable(lines, [], '', document, undefined);
  return `${lines.join('\n')}\n`;
}

/**
 * One item of the top-level array of tables `key`, as writeToml writes it inside a document:
 * from its `[[key]]` header line to its last line, without the blank line writeToml puts
 * before the header or the final newline. A document is its top-level keys (writeToml of them,
 * which ends in a newline) followed by `\n` + fragment for each item (see tomlDocumentParts).
 */
export function writeTomlTableArrayItem(key: string, item: Record<string, unknown>): string {
  const lines: string[] = [];
  const sub = tomlKey(key);
  writeTable(lines, [key], sub, item, `[[${sub}]]`);
  return lines.join('\n');
}

/**
 * The pieces of writeToml({ ...head, [key]: items }), byte for byte, where `head` holds no
 * arrays of tables and `fragments` are writeTomlTableArrayItem(key, item) of the items (as
 * text, or in any other form, e.g. encoded: they are placed in the list as they are).
 */
export function tomlDocumentParts<F>(head: Record<string, unknown>, key: string, fragments: readonly F[]): Array<string | F> {
  // writeToml writes an empty array inline (`key = []`), among the head's keys.
  if (fragments.length === 0) return [writeToml({ ...head, [key]: [] })];
  const top = writeToml(head);
  const parts: Array<string | F> = [];
  fragments.forEach((fragment, i) => {
    // writeToml of an empty table is just "\n"; then the first header has no blank line before it.
    if (i > 0) parts.push('\n\n', fragment);
    else if (top === '\n') parts.push(fragment);
    else parts.push(top, '\n', fragment);
  });
  parts.push('\n');
  return parts;
}
