/**
 * How a `/_q` query is answered on one SQLite connection: its conditions (substring terms found
 * in the FTS5 trigram tables or matched by scanning, SemVer version filters, yanked filtering),
 * the number of matches, and the row ids of the requested page in name/SemVer order (a walk of
 * the order index or a sort of the matches, whichever reads less; matches few enough to sort are
 * counted in the same pass), all from one read transaction; and whether a query is cheap
 * enough to answer on the calling thread (pageWithin). The invoice index runs it on its own
 * connection or, for a server, also on a query worker's read-only one (sqlite-query-worker.ts);
 * either way the documents are read by id afterwards.
 */
import type Database from 'better-sqlite3';
import semver from 'semver';
import type { InvoiceQuery } from './invoice-index.js';
import { queryMatch } from './invoice-index-rules.js';
import { versionFilter } from './invoice-index-versions.js';
import type { StatementCache } from './sqlite-connection.js';

/** Terms shorter than this (in code points) have no trigram and are matched by scanning. */
const TRIGRAM = 3;
/** The factor between the entries a walk of the order index visits and the matches sorting reads (see #pageOf). */
const WALK_ADVANTAGE = 4;
/** A walk of the order index gives up after this many times the entries it was expected to visit. */
const WALK_SLACK = 2;
/**
 * A query on the calling thread with at most this many candidates reads the ids of all its
 * matches in query order and takes its total and page from them: for a handful of matches,
 * one sort costs half of the one-pass statement (#sortedWithin), whose materialized matches
 * and count have a fixed cost of their own.
 */
const ALL_SORTED_ROWS = 512;
/**
 * The most matches the one-pass statement (#sortedWithin) takes on, and the most names holding
 * the term (and other invoices whose text does) it starts with: it lists them all before its
 * first match, and the other conditions may reject most of their invoices.
 */
const ONE_PASS_ROWS = 10_000;

/** The query order over (id, name, version_key, version) rows: name, then SemVer descending. */
const QUERY_ORDER = 'name, version_key DESC, version';
/** The row ids of the names holding the `:names` term, at most `:max + 1` of them. */
const NAMES_UP_TO_MAX = 'SELECT rowid FROM bindle_name_fts WHERE bindle_name_fts MATCH :names LIMIT :max + 1';
/** The invoices whose rest of the text holds the `:texts` term, counted up to `:max + 1`. */
const TEXTS_UP_TO_MAX = '(SELECT count(*) FROM (SELECT rowid FROM invoice_text_fts WHERE invoice_text_fts MATCH :texts LIMIT :max + 1))';

/** What a query finds: how many invoices match, and the row ids of the requested page in query order. */
export interface QueryPage {
  readonly total: number;
  readonly ids: number[];
}

/** The conditions of one query. */
interface Filter {
  /** Leave yanked invoices out. */
  readonly unyanked: boolean;
  /** The column the terms are matched in: name (strict) or search_text (standard). */
  readonly column: 'name' | 'search_text';
  /** Terms the full-text index can find (3+ characters, FTS5 in use). */
  readonly indexed: string[];
  /** Every other condition (short terms, version), on `invoices i`, with its parameters in order. */
  readonly clauses: string[];
  readonly params: unknown[];
}

/** The WHERE clause of a filter, every term checked on the row (no full-text index), and its parameters. */
function whereOf(filter: Filter): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (filter.unyanked) clauses.push('i.yanked = 0');
  for (const term of filter.indexed) {
    clauses.push(`instr(i.${filter.column}, ?) > 0`);
    params.push(term);
  }
  clauses.push(...filter.clauses);
  params.push(...filter.params);
  return { where: clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`, params };
}

/** The parts of matchesOf: the invoices of matching names, and (standard) those whose rest of the text matches. */
interface Matches {
  /** The MATCH expression of the names (bindle_name_fts). */
  readonly nameMatch: string;
  readonly byName: { sql: string; params: unknown[] };
  /** Standard queries: the second part, its MATCH expression, and whether yanked is its only other condition. */
  readonly byText?: { sql: string; params: unknown[]; match: string; plain: boolean };
}

/**
 * A query yielding (id, name, version_key, version) of every invoice a filter with indexed
 * terms matches, and its parameters. The terms are looked up in the full-text tables: strict
 * ones all at once among the names; a standard one among the search names and the rest of the
 * invoices' search text (its longest term; the others are checked on each candidate's
 * search_text). The invoices of the matching names are read from invoices_order, whose
 * entries hold every other condition's columns, in query order when the caller sorts.
 */
function matchesOf(filter: Filter): Matches {
  const conditions: string[] = filter.unyanked ? ['i.yanked = 0'] : [];
  const conditionParams: unknown[] = [];
  let nameMatch: string;
  let restMatch: string | undefined;
  if (filter.column === 'name') {
    nameMatch = `{name} : (${filter.indexed.map(ftsPhrase).join(' AND ')})`;
  } else {
    const [driver = '', ...others] = [...filter.indexed].sort((a, b) => codePoints(b) - codePoints(a));
    nameMatch = `{search_name} : ${ftsPhrase(driver)}`;
    restMatch = ftsPhrase(driver);
    for (const term of others) {
      conditions.push('instr(i.search_text, ?) > 0');
      conditionParams.push(term);
    }
  }
  conditions.push(...filter.clauses);
  conditionParams.push(...filter.params);
  const and = conditions.map((condition) => ` AND ${condition}`).join('');
  const columns = 'SELECT i.id AS id, i.name AS name, i.version_key AS version_key, i.version AS version';
  const names = 'SELECT name FROM bindle_names WHERE id IN (SELECT rowid FROM bindle_name_fts WHERE bindle_name_fts MATCH ?)';
  const byName = `${columns} FROM invoices i INDEXED BY invoices_order WHERE i.name IN (${names})${and}`;
  const named = { sql: byName, params: [nameMatch, ...conditionParams] };
  if (restMatch === undefined) return { nameMatch, byName: named };
  // The invoices of the matching names are left out of the second part: no duplicates to remove.
  const byText = {
    sql: `${columns} FROM invoices i
      WHERE i.id IN (SELECT rowid FROM invoice_text_fts WHERE invoice_text_fts MATCH ?) AND i.name NOT IN (${names})${and}`,
    params: [restMatch, nameMatch, ...conditionParams],
    match: restMatch,
    plain: conditionParams.length === 0,
  };
  return { nameMatch, byName: named, byText };
}

/** Both parts of `matches` as one query (UNION ALL: the parts share no invoice), and its parameters. */
function allMatches(matches: Matches): { sql: string; params: unknown[] } {
  const { byName, byText } = matches;
  if (byText === undefined) return byName;
  return { sql: `${byName.sql} UNION ALL ${byText.sql}`, params: [...byName.params, ...byText.params] };
}

/** Length in Unicode code points, which is what the trigram tokenizer counts. */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** An FTS5 string literal: a phrase, which the trigram tokenizer matches as an exact substring. */
function ftsPhrase(term: string): string {
  return `"${term.replaceAll('"', '""')}"`;
}

/** Answers queries (totals and pages of row ids) on one connection, with that connection's statement cache. */
export class SqliteQueryPager {
  readonly #statements: StatementCache;
  readonly #fullTextSearch: boolean;
  /** The number of invoices at a data version (see #countAll). */
  #knownCount: { dataVersion: number; count: number } | undefined;

  /** `fullTextSearch`: the file has the full-text tables and terms of 3+ characters are looked up in them. */
  constructor(statements: StatementCache, fullTextSearch: boolean) {
    this.#statements = statements;
    this.#fullTextSearch = fullTextSearch;
  }

  /** Forgets the number of invoices: for a write on this connection, which `PRAGMA data_version` does not show. */
  forget(): void {
    this.#knownCount = undefined;
  }

  /**
   * The total and the page's row ids of a query (paging already checked), both from one read
   * transaction, so they agree however other connections write meanwhile; throws invalid_query
   * for a version that is neither a version nor a range.
   */
  page(q: InvoiceQuery): QueryPage {
    const filter = this.#filterFor(q);
    return this.#statements.reading(() => this.#pageOf(filter, filter.indexed.length > 0 ? matchesOf(filter) : undefined, q));
  }

  /**
   * page(q) when answering it visits at most about `maxRows` invoices, else undefined (having
   * read at most that many). That is: the page ends within `maxRows`, the query has a term the
   * full-text index finds, and the invoices of the names that hold it (strict: all the terms)
   * and, for a standard query, the other invoices whose text holds it (its longest term) are
   * at most `maxRows` in all; every other condition is checked on those candidates only. A
   * query without such a term scans rows or walks the order index, as far as the index is large.
   * The count of candidates and the page come from one read transaction, as in page(q).
   */
  pageWithin(q: InvoiceQuery, maxRows: number): QueryPage | undefined {
    if (q.offset + q.limit > maxRows) return undefined;
    const filter = this.#filterFor(q);
    if (filter.indexed.length === 0) return undefined;
    const matches = matchesOf(filter);
    return this.#statements.reading(() => {
      const candidates = this.#candidates(matches, maxRows);
      const atMost = candidates.names + (candidates.texts ?? 0);
      if (atMost > maxRows) return undefined;
      // Every name in bindle_names has an invoice, so the names holding the term are no more
      // than their invoices: atMost bounds the term's holders as well.
      return atMost <= ALL_SORTED_ROWS ? this.#allSorted(matches, q) : this.#pageOf(filter, matches, q, { texts: candidates.texts, holders: atMost });
    });
  }

  /** The total and the page of a query from the ids of all its matches in query order: for a few matches (ALL_SORTED_ROWS). */
  #allSorted(matches: Matches, q: InvoiceQuery): QueryPage {
    const union = allMatches(matches);
    const ids = this.#statements.values(`SELECT id FROM (${union.sql}) ORDER BY ${QUERY_ORDER}`).all(...union.params) as number[];
    return { total: ids.length, ids: ids.slice(q.offset, q.offset + q.limit) };
  }

  /**
   * The candidates of `matches` (see pageWithin), counting at most `maxRows + 1` names and
   * texts: the invoices of the matching names, and (standard) the invoices whose rest of the
   * text matches (0 for strict). Past `maxRows`, a count is only known to be over it.
   */
  #candidates(matches: Matches, maxRows: number): { names: number; texts?: number } {
    // One statement for both counts: each statement run costs the calling thread more than these small look-ups.
    const names = `SELECT CASE WHEN count(*) > :max THEN :max + 1 ELSE coalesce(sum(invoices), 0) END FROM bindle_names
      WHERE id IN (${NAMES_UP_TO_MAX})`;
    if (matches.byText === undefined) {
      return { names: this.#statements.values(names).get({ max: maxRows, names: matches.nameMatch }) as number };
    }
    return this.#statements.rows(
      `SELECT (${names}) AS names,
              ${TEXTS_UP_TO_MAX} AS texts`,
    ).get({ max: maxRows, names: matches.nameMatch, texts: matches.byText.match }) as { names: number; texts: number };
  }

  /**
   * The total and the page of a query, its filter and (with indexed terms) its matches built.
   * `counted`, from #candidates in the same transaction: `texts`, the number of invoices whose
   * rest of the text matches; `holders`, a number the term's holders (see #termHolders) are
   * known not to exceed.
   */
  #pageOf(filter: Filter, matches: Matches | undefined, q: InvoiceQuery, counted: { texts?: number; holders?: number } = {}): QueryPage {
    const all = matches === undefined ? this.#countAll() : this.#countCeiling();
    if (matches !== undefined) {
      const sortable = Math.floor(Math.sqrt(WALK_ADVANTAGE * (q.offset + q.limit) * all));
      const sorted = this.#sortedWithin(matches, q, Math.min(ONE_PASS_ROWS, sortable), counted.holders);
      if (sorted !== undefined) return sorted;
    }
    const total = matches === undefined ? this.#countMatches(filter, all) : this.#countMatched(matches, filter.unyanked, counted.texts);
    if (total <= q.offset) return { total, ids: [] };
    // Walking the order index finds the page after about (offset + limit) * all / total
    // entries. Without indexed terms, sorting reads each match's row, a walk only index
    // entries: walk unless it visits WALK_ADVANTAGE times more entries than there are matches.
    // With indexed terms, sorting reads only the matches' index entries, and a standard
    // query's walk reads rows: walk only when it visits WALK_ADVANTAGE times fewer.
    const expectedWalk = Math.ceil(((q.offset + q.limit) * all) / total);
    const walk = matches === undefined ? expectedWalk < WALK_ADVANTAGE * total : WALK_ADVANTAGE * expectedWalk < total;
    let ids: number[] | undefined;
    if (walk) {
      // The estimate assumes the matches are spread evenly in name order, but they are often
      // bunched (a name fragment matches one run of names, anywhere in the order). So the walk
      // visits at most WALK_SLACK times the expected entries; when that does not fill the
      // page, the matches are sorted instead, and a bunched query costs only that much extra.
      ids = this.#walkPage(filter, q, Math.max(WALK_SLACK * expectedWalk, q.offset + q.limit));
      if (ids.length < Math.min(q.limit, total - q.offset)) ids = undefined;
    }
    if (ids === undefined && matches !== undefined) {
      const union = allMatches(matches);
      ids = this.#statements.values(`SELECT id FROM (${union.sql}) ORDER BY ${QUERY_ORDER} LIMIT ? OFFSET ?`).all(
        ...union.params,
        q.limit,
        q.offset,
      ) as number[];
    } else if (ids === undefined) {
      // `+i.name` keeps the planner on its best filtering index, then it sorts.
      const { where, params } = whereOf(filter);
      ids = this.#statements.values(
        `SELECT i.id FROM invoices i ${where} ORDER BY +i.name, i.version_key DESC, i.version LIMIT ? OFFSET ?`,
      ).all(...params, q.limit, q.offset) as number[];
    }
    return { total, ids };
  }

  /**
   * The total and the page of `matches` in one pass, when they are at most `bound`, else
   * undefined. With `bound` at most the largest total for which #pageOf's rule sorts the matches
   * rather than walking the order index, the page is the one that rule gives, and each match is
   * read once instead of once to count and once to sort. The total comes with the page's ids,
   * as one row, also when the page starts past the matches. Tried only when the full-text
   * tables hold the term in at most `bound` names and (standard) other texts together: the
   * statement lists those names before its first match, and a restrictive version or yanked
   * filter could leave it visiting all their invoices only to count them again after. Those
   * are not counted again when `holdersAtMost` already keeps them within `bound`.
   */
  #sortedWithin(matches: Matches, q: InvoiceQuery, bound: number, holdersAtMost?: number): QueryPage | undefined {
    if ((holdersAtMost === undefined || holdersAtMost > bound) && this.#termHolders(matches, bound) > bound) return undefined;
    const union = allMatches(matches);
    // Over the bound: no ids (NULL). A page past the matches is known empty without a sort.
    const row = this.#statements.rows(
      `WITH m AS MATERIALIZED (SELECT * FROM (${union.sql}) LIMIT ?), c AS (SELECT count(*) AS n FROM m)
       SELECT n AS total, CASE WHEN n > ? THEN NULL WHEN n <= ? THEN '[]' ELSE (
         SELECT json_group_array(id ORDER BY ${QUERY_ORDER}) FROM (SELECT * FROM m ORDER BY ${QUERY_ORDER} LIMIT ? OFFSET ?)
       ) END AS ids FROM c`,
    ).get(...union.params, bound + 1, bound, q.offset, q.limit, q.offset) as { total: number; ids: string | null };
    return row.ids === null ? undefined : { total: row.total, ids: JSON.parse(row.ids) as number[] };
  }

  /**
   * The names whose text holds a query's term and (standard) the invoices whose rest of the
   * text does, from the full-text tables alone, each counted up to `max + 1`.
   */
  #termHolders(matches: Matches, max: number): number {
    const names = `SELECT count(*) FROM (${NAMES_UP_TO_MAX})`;
    if (matches.byText === undefined) return this.#statements.values(names).get({ max, names: matches.nameMatch }) as number;
    return this.#statements.values(
      `SELECT (${names}) + ${TEXTS_UP_TO_MAX}`,
    ).get({ max, names: matches.nameMatch, texts: matches.byText.match }) as number;
  }

  /**
   * A ceiling on the number of invoices, for choosing how to find a page (never for a total):
   * the largest row id. Row ids are distinct and positive, so it is never below the count, and a
   * term query, whose total comes from its matches, needs no more: counting reads a whole
   * index (~0.1 s at 1,000,000 invoices) after every commit, this is one look-up.
   */
  #countCeiling(): number {
    return this.#statements.values('SELECT coalesce(max(id), 0) FROM invoices').get() as number;
  }

  /**
   * Number of invoices. Counting reads a whole index, so the count is kept until this
   * connection writes (insert, yank) or another connection commits (`PRAGMA data_version`).
   */
  #countAll(): number {
    const dataVersion = this.#statements.values('PRAGMA data_version').get() as number;
    if (this.#knownCount?.dataVersion !== dataVersion) {
      this.#knownCount = { dataVersion, count: this.#statements.values('SELECT count(*) FROM invoices').get() as number };
    }
    return this.#knownCount.count;
  }

  /**
   * The page of matches found by walking at most `budget` entries of the order index (the
   * first `budget` invoices in query order). Shorter than the page when the budget ran out.
   */
  #walkPage(filter: Filter, q: InvoiceQuery, budget: number): number[] {
    const { where, params } = whereOf(filter);
    const text = filter.column === 'search_text' ? ', search_text' : '';
    return this.#statements.values(
      `SELECT i.id FROM (
         SELECT id, name, version_key, version, yanked, prerelease, semver_safe, major, minor, patch${text}
         FROM invoices INDEXED BY invoices_order ORDER BY ${QUERY_ORDER} LIMIT ?
       ) AS i ${where} ORDER BY i.name, i.version_key DESC, i.version LIMIT ? OFFSET ?`,
    ).all(budget, ...params, q.limit, q.offset) as number[];
  }

  /**
   * How many invoices `matches` holds. The second part of a standard query reads a row per
   * match, so it is counted only when both parts have matches; when only it has, and yanked is
   * its only condition, the full-text count less its yanked matches (a small partial index)
   * reads no rows. `texts`: that full-text count, when the caller has it.
   */
  #countMatched(matches: Matches, unyanked: boolean, texts?: number): number {
    const count = (sql: string, ...params: unknown[]): number => this.#statements.values(sql).get(...params) as number;
    const named = count(`SELECT count(*) FROM (${matches.byName.sql})`, ...matches.byName.params);
    const text = matches.byText;
    if (text === undefined) return named;
    const rest = texts ?? count('SELECT count(*) FROM invoice_text_fts WHERE invoice_text_fts MATCH ?', text.match);
    if (rest === 0) return named;
    if (named > 0 || !text.plain) return named + count(`SELECT count(*) FROM (${text.sql})`, ...text.params);
    if (!unyanked) return rest;
    return (
      rest -
      count(
        `SELECT count(*) FROM invoice_text_fts f JOIN invoices i INDEXED BY invoices_yanked ON i.id = f.rowid AND i.yanked = 1
         WHERE invoice_text_fts MATCH ?`,
        text.match,
      )
    );
  }

  /**
   * How many invoices a filter without indexed terms matches. Yanked invoices are few, so
   * without other conditions it is cheaper to subtract the yanked ones (a small partial index)
   * than to look at every row.
   */
  #countMatches(filter: Filter, all: number): number {
    const count = (sql: string, ...params: unknown[]): number => this.#statements.values(sql).get(...params) as number;
    if (filter.clauses.length > 0) {
      const { where, params } = whereOf(filter);
      return count(`SELECT count(*) FROM invoices i ${where}`, ...params);
    }
    return filter.unyanked ? all - count('SELECT count(*) FROM invoices WHERE yanked = 1') : all;
  }

  /** The WHERE clauses for a query. Cheap, index-friendly clauses come first. */
  #filterFor(q: InvoiceQuery): Filter {
    const { column, terms } = queryMatch(q);
    const indexed = this.#fullTextSearch ? terms.filter((term) => codePoints(term) >= TRIGRAM) : [];
    const filter: Filter = { unyanked: !q.yanked, column, indexed, clauses: [], params: [] };
    for (const term of terms) {
      if (indexed.includes(term)) continue;
      filter.clauses.push(`instr(i.${column}, ?) > 0`);
      filter.params.push(term);
    }

    const version = versionFilter(q.version);
    if (version === undefined) return filter;
    if (version.kind === 'exact') {
      filter.clauses.push('i.version_key = ?', 'i.version = ?');
      filter.params.push(version.key, version.version);
      return filter;
    }
    if (version.lower !== undefined) {
      filter.clauses.push('i.version_key >= ?');
      filter.params.push(version.lower);
    }
    if (version.upper !== undefined) {
      filter.clauses.push('i.version_key <= ?');
      filter.params.push(version.upper);
    }
    filter.clauses.push(
      `((i.semver_safe = 1 AND ${version.exact.sql}) OR (i.semver_safe = 0 AND bindle_semver_satisfies(i.version, ?)))`,
    );
    filter.params.push(...version.exact.params, version.range.range);
    return filter;
  }
}

/** Registers the SQL functions the queries use on a connection (every connection that runs a pager). */
export function registerQueryFunctions(db: Database.Database): void {
  // Parsing a range is the costly part; a query calls this once per candidate row with the same range.
  let lastText = '';
  let lastRange: semver.Range | undefined;
  db.function('bindle_semver_satisfies', { deterministic: true }, (version: unknown, range: unknown): number => {
    if (typeof version !== 'string' || typeof range !== 'string') return 0;
    if (lastRange === undefined || range !== lastText) {
      lastRange = new semver.Range(range);
      lastText = range;
    }
    return semver.satisfies(version, lastRange) ? 1 : 0;
  });
}
