/**
 * Bindle names, strict SemVer 2 versions, `name/version` ids and the canonical id
 * (sha256 of `name/version`, PROTOCOL.md §1).
 */
import { createHash } from 'node:crypto';
import { BindleError } from '../errors/bindle-error.js';

export const MAX_NAME_BYTES = 512;

// Official SemVer 2.0.0 grammar: no leading `v`, no leading zeros in numeric identifiers.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const NAME_SEGMENT = /^[\p{L}\p{M}\p{N}_.-]+$/u;
/** The common case, checked in one pass: ASCII segments, none of them "." or "..". */
const ASCII_NAME = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;

/** A parsed `name/version` id. */
export interface BindleId {
  readonly name: string;
  readonly version: string;
}

/** Why `name` is not a valid bindle name, or undefined when it is. */
export function nameProblem(name: string): string | undefined {
  if (name.length <= MAX_NAME_BYTES && ASCII_NAME.test(name) && !DOT_SEGMENT.test(name)) return undefined;
  if (name.length === 0) return 'name must not be empty';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `name must be at most ${MAX_NAME_BYTES} bytes`;
  for (const segment of name.split('/')) {
    if (segment === '') return 'name must not have an empty path segment (leading, trailing or double "/")';
    if (segment === '.' || segment === '..') return `name must not have a "${segment}" path segment`;
    if (!NAME_SEGMENT.test(segment)) {
      return `name segment "${segment}" may only hold letters, digits, "_", "." and "-"`;
    }
    if (/^\p{M}/u.test(segment)) return `name segment "${segment}" must not start with a combining mark`;
    const scripts = scriptsOf(segment);
    if (!isAllowedScriptMix(scripts)) {
      return `name segment "${segment}" mixes scripts (${[...scripts].join(', ')}), which lets look-alike names pass for each other; use one script per segment`;
    }
  }
  if (name.normalize('NFC') !== name) {
    return 'name must be in Unicode NFC (composed) form, so that it has one spelling: a signed name must not have two';
  }
  return undefined;
}

/**
 * Scripts a name segment may use (UTS #39 §5.2 "highly restrictive" mixing aside): characters
 * of Common and Inherited (digits, "_", ".", "-", combining marks) go with any script.
 */
const SCRIPTS: ReadonlyArray<readonly [string, RegExp]> = [
  'Latin', 'Greek', 'Cyrillic', 'Armenian', 'Hebrew', 'Arabic', 'Syriac', 'Thaana', 'Nko', 'Devanagari', 'Bengali',
  'Gurmukhi', 'Gujarati', 'Oriya', 'Tamil', 'Telugu', 'Kannada', 'Malayalam', 'Sinhala', 'Thai', 'Lao', 'Tibetan',
  'Myanmar', 'Georgian', 'Hangul', 'Ethiopic', 'Cherokee', 'Canadian_Aboriginal', 'Khmer', 'Mongolian', 'Hiragana',
  'Katakana', 'Bopomofo', 'Han', 'Yi', 'Tifinagh', 'Javanese', 'Balinese', 'Sundanese', 'Cham', 'Tai_Le', 'Vai', 'Adlam',
].map((script) => [script, new RegExp(`\\p{Script=${script}}`, 'u')] as const);
const COMMON_OR_INHERITED = /[\p{Script=Common}\p{Script=Inherited}]/u;

/** The scripts of a segment's characters; `Other` for a script not listed above. */
function scriptsOf(segment: string): Set<string> {
  const found = new Set<string>();
  for (const char of segment) {
    if (char < '\u0080') {
      if (/[A-Za-z]/.test(char)) found.add('Latin');
      continue;
    }
    if (COMMON_OR_INHERITED.test(char)) continue;
    found.add(SCRIPTS.find(([, re]) => re.test(char))?.[0] ?? 'Other');
  }
  return found;
}

/** Han with Japanese kana, Korean Hangul or Bopomofo, and Latin with any one of those (UTS #39). */
const CJK_MIXES: ReadonlyArray<ReadonlySet<string>> = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Hangul']),
  new Set(['Latin', 'Han', 'Bopomofo']),
];

function isAllowedScriptMix(scripts: ReadonlySet<string>): boolean {
  if (scripts.size <= 1) return true;
  return CJK_MIXES.some((mix) => [...scripts].every((s) => mix.has(s)));
}

/** Throws invalid_name unless `name` follows the naming rules. */
export function assertValidName(name: string): void {
  const problem = nameProblem(name);
  if (problem !== undefined) throw new BindleError('invalid_name', `invalid bindle name ${JSON.stringify(name)}: ${problem}`);
}

/** True when `version` is a strict SemVer 2 version. */
export function isStrictSemver(version: string): boolean {
  return SEMVER.test(version);
}

/** Throws invalid_version unless `version` is strict SemVer 2. */
export function assertValidVersion(version: string): void {
  if (!isStrictSemver(version)) {
    throw new BindleError(
      'invalid_version',
      `invalid bindle version ${JSON.stringify(version)}: must be strict SemVer 2 (e.g. 1.2.3, no leading "v" or zeros)`,
    );
  }
}

/** Validates and returns the id. */
export function makeId(name: string, version: string): BindleId {
  assertValidName(name);
  assertValidVersion(version);
  return { name, version };
}

const SLASH = 0x2f;

/**
 * Where the last `/` of `id` is (-1 when none), found from the end: the version after it is
 * short, and V8's String.prototype.lastIndexOf is a call into its runtime (this runs on every
 * invoice and parcel GET).
 */
function lastSlash(id: string): number {
  let i = id.length - 1;
  while (i >= 0 && id.charCodeAt(i) !== SLASH) i--;
  return i;
}

/** Parses `name/version`, splitting at the LAST `/` (names may contain `/`). */
export function parseId(id: string): BindleId {
  const slash = lastSlash(id);
  if (slash <= 0 || slash === id.length - 1) {
    throw new BindleError('invalid_id', `invalid bindle id ${JSON.stringify(id)}: expected <name>/<version>`);
  }
  return makeId(id.slice(0, slash), id.slice(slash + 1));
}

export function formatId(id: BindleId): string {
  return `${id.name}/${id.version}`;
}

/** Canonical id: lowercase hex sha256 of `name/version`. Names the invoice on disk. */
export function canonicalId(id: BindleId): string {
  return createHash('sha256').update(formatId(id), 'utf8').digest('hex');
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** True when `value` is a lowercase hex SHA-256 digest (64 characters). */
export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}
