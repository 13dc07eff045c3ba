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
  }
  return undefined;
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

/** Parses `name/version`, splitting at the LAST `/` (names may contain `/`). */
export function parseId(id: string): BindleId {
  const slash = id.lastIndexOf('/');
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
