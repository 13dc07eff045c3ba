/**
 * SemVer precedence as plain strings, so that SQLite's BINARY collation (byte order) can sort
 * and index versions: `ORDER BY name, version_key DESC` lists the newest version first.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import { isStrictSemver } from '../../core/ids/bindle-id.js';

/** The parts of a strict SemVer 2 version the index stores for filtering and ordering. */
export interface VersionParts {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly prerelease: readonly string[];
  /** Order-preserving key: see versionSortKey. */
  readonly key: string;
  /**
   * True when every number in the version has at most 15 digits, so the `semver` package parses
   * it with exact numbers (it gives up beyond Number.MAX_SAFE_INTEGER) and its precedence is
   * exactly the key's. Ranges may be evaluated on the key only for such versions.
   */
  readonly semverSafe: boolean;
}

/** Numbers with at most this many digits are below Number.MAX_SAFE_INTEGER. */
const SAFE_DIGITS = 15;

/** Digits in the length prefix of a numeric identifier; bounds a number to 9999 digits. */
const LENGTH_WIDTH = 4;
const MAX_DIGITS = 10 ** LENGTH_WIDTH - 1;

// Markers. Every character used below is ASCII, so JS string order, UTF-8 byte order and
// SQLite BINARY collation agree. Prerelease identifiers only hold [0-9A-Za-z-] (0x2D and up).
const PRERELEASE = '-'; // after the core: this version has a prerelease (sorts first)...
const RELEASE = '~'; // ...before the same core without one (0x7E > 0x2D)
const END = '0'; // end of the prerelease identifiers: fewer identifiers sort first
const NUMERIC = '1'; // a numeric identifier sorts before...
const ALPHANUMERIC = '2'; // ...an alphanumeric one
const TEXT_END = '!'; // ends an alphanumeric identifier; below every identifier character

/**
 * A numeric identifier (no leading zeros) as its digit count, zero-padded to a fixed width,
 * then its digits. Equal widths compare digit by digit; a longer number is always larger. Unlike
 * plain zero-padding this works for any size, also beyond Number.MAX_SAFE_INTEGER.
 */
function numberKey(digits: string, version: string): string {
  if (digits.length > MAX_DIGITS) {
    throw new BindleError('invalid_version', `version ${JSON.stringify(version)} has a number longer than ${MAX_DIGITS} digits`);
  }
  return String(digits.length).padStart(LENGTH_WIDTH, '0') + digits;
}

function identifierKey(id: string, version: string): string {
  return /^\d+$/.test(id) ? NUMERIC + numberKey(id, version) : ALPHANUMERIC + id + TEXT_END;
}

function clampToSafe(digits: string): number {
  const n = Number(digits);
  return n > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : n;
}

/**
 * Splits a strict SemVer 2 version into the parts the index stores. Throws invalid_version for
 * anything else. Numbers beyond Number.MAX_SAFE_INTEGER are clamped in major/minor/patch (the
 * `semver` package refuses such versions, so no range can match them) but exact in `key`.
 */
export function versionParts(version: string): VersionParts {
  if (!isStrictSemver(version)) {
    throw new BindleError('invalid_version', `invalid bindle version ${JSON.stringify(version)}: must be strict SemVer 2`);
  }
  const plus = version.indexOf('+');
  const precedence = plus === -1 ? version : version.slice(0, plus);
  const dash = precedence.indexOf('-');
  const core = (dash === -1 ? precedence : precedence.slice(0, dash)).split('.');
  const prerelease = dash === -1 ? [] : precedence.slice(dash + 1).split('.');
  const [major = '0', minor = '0', patch = '0'] = core;
  let key = numberKey(major, version) + numberKey(minor, version) + numberKey(patch, version);
  if (prerelease.length === 0) {
    key += RELEASE;
  } else {
    key += PRERELEASE + prerelease.map((id) => identifierKey(id, version)).join('') + END;
  }
  const semverSafe = [major, minor, patch, ...prerelease].every((id) => !/^\d+$/.test(id) || id.length <= SAFE_DIGITS);
  return { major: clampToSafe(major), minor: clampToSafe(minor), patch: clampToSafe(patch), prerelease, key, semverSafe };
}

/**
 * A string whose byte order is SemVer 2 precedence order (ascending) for strict versions:
 * numbers compare numerically, a prerelease sorts before its release, prerelease identifiers
 * compare per the spec (numeric < alphanumeric, ASCII order, more identifiers sort later) and
 * build metadata is ignored (versions differing only in build metadata get the same key).
 */
export function versionSortKey(version: string): string {
  return versionParts(version).key;
}
