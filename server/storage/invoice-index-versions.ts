/**
 * The `/_q` version filter of every InvoiceIndex, compiled to SQL: an exact version, or an
 * npm-style SemVer range evaluated on the order-preserving version keys of semver-order.ts.
 * The SQL is over an invoices table aliased `i` with the columns version, version_key, major,
 * minor, patch and prerelease (true/1 when the version has a prerelease), with `?` placeholders.
 * A backend renumbers them if its driver wants another style (see numberPlaceholders).
 */
import semver from 'semver';
import { BindleError } from '../../core/errors/bindle-error.js';
import { isStrictSemver } from '../../core/ids/bindle-id.js';
import { versionSortKey } from './semver-order.js';

/** SQL over `i` with its parameters, in order. */
export interface SqlFragment {
  sql: string;
  params: unknown[];
}

/** A parsed version filter. */
export type VersionFilter =
  | { readonly kind: 'exact'; readonly version: string; readonly key: string }
  | {
      readonly kind: 'range';
      readonly range: semver.Range;
      /**
       * Inclusive version_key bounds of everything the range can match (undefined = unbounded),
       * for narrowing an index scan. Beyond them no version satisfies the range, except where
       * the semver package rounds a prerelease number above 2^53 (it compares those imprecisely).
       */
      readonly lower: string | undefined;
      readonly upper: string | undefined;
      /**
       * Exactly the versions semver's Range.test admits, for rows whose version is semver-safe
       * (semver-order.ts VersionParts.semverSafe): others must be checked with satisfies().
       */
      readonly exact: SqlFragment;
    };

/**
 * The filter for a query's `version` parameter; undefined for none (absent, empty or blank).
 * invalid_query for something that is neither a strict version nor a valid range.
 */
export function versionFilter(version: string | undefined): VersionFilter | undefined {
  const text = version?.trim() ?? '';
  if (text === '') return undefined;
  if (isStrictSemver(text)) return { kind: 'exact', version: text, key: versionSortKey(text) };
  const range = parseRange(text);
  const { lower, upper } = keyBounds(range);
  return { kind: 'range', range, lower, upper, exact: rangeSql(range) };
}

/** semver.satisfies for a stored version (the check for rows that are not semver-safe). */
export function satisfies(version: string, range: semver.Range): boolean {
  return semver.satisfies(version, range);
}

/** `sql` with each `?` placeholder replaced by `$n`, n counting on from `after` + 1. */
export function numberPlaceholders(sql: string, after = 0): string {
  let n = after;
  return sql.replace(/\?/g, () => `$${String(++n)}`);
}

function parseRange(text: string): semver.Range {
  const valid = semver.validRange(text);
  if (valid === null) {
    throw new BindleError('invalid_query', `invalid SemVer range ${JSON.stringify(text)}: expected a version or an npm-style range such as ^1.2.0`);
  }
  return new semver.Range(valid);
}

/**
 * Per comparator set, the tightest comparator bounds it (`>`/`<` taken as inclusive); the
 * range's bound is the loosest set's.
 */
function keyBounds(range: semver.Range): { lower: string | undefined; upper: string | undefined } {
  let lower: string | undefined;
  let upper: string | undefined;
  let unboundedBelow = false;
  let unboundedAbove = false;
  for (const set of range.set) {
    let setLower: string | undefined;
    let setUpper: string | undefined;
    for (const c of set) {
      if (c.value === '') continue; // matches anything
      const key = versionSortKey(c.semver.version);
      if (c.operator !== '<' && c.operator !== '<=' && (setLower === undefined || key > setLower)) setLower = key;
      if (c.operator !== '>' && c.operator !== '>=' && (setUpper === undefined || key < setUpper)) setUpper = key;
    }
    if (setLower === undefined) unboundedBelow = true;
    else if (lower === undefined || setLower < lower) lower = setLower;
    if (setUpper === undefined) unboundedAbove = true;
    else if (upper === undefined || setUpper > upper) upper = setUpper;
  }
  return { lower: unboundedBelow ? undefined : lower, upper: unboundedAbove ? undefined : upper };
}

const SQL_OPERATORS: Readonly<Record<string, string>> = { '': '=', '=': '=', '<': '<', '<=': '<=', '>': '>', '>=': '>=' };

/**
 * `range` as SQL over version_key, exactly what semver's Range.test does (without
 * includePrerelease): some comparator set whose comparators all hold, and where a prerelease
 * version is only admitted by a set with a prerelease comparator on the same major.minor.patch.
 */
function rangeSql(range: semver.Range): SqlFragment {
  const params: unknown[] = [];
  const sets = range.set.map((set) => {
    const clauses: string[] = [];
    const samePatch: string[] = [];
    const samePatchParams: unknown[] = [];
    for (const c of set) {
      if (c.value === '') continue; // the comparator that matches anything
      const op = SQL_OPERATORS[c.operator];
      if (op === undefined) throw new BindleError('internal', `unexpected SemVer comparator ${JSON.stringify(c.value)}`);
      clauses.push(`i.version_key ${op} ?`);
      params.push(versionSortKey(c.semver.version));
      if (c.semver.prerelease.length > 0) {
        samePatch.push('(i.major = ? AND i.minor = ? AND i.patch = ?)');
        samePatchParams.push(c.semver.major, c.semver.minor, c.semver.patch);
      }
    }
    clauses.push(`(${['NOT i.prerelease', ...samePatch].join(' OR ')})`);
    params.push(...samePatchParams);
    return `(${clauses.join(' AND ')})`;
  });
  return { sql: `(${sets.join(' OR ')})`, params };
}
