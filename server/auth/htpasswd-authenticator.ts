/**
 * HTTP Basic authentication against an htpasswd file (bcrypt entries only), with a short-lived
 * cache of successful verifications so that bcrypt's deliberate cost is not paid on every request.
 * bcrypt runs on worker threads (bcrypt-pool.ts), never on the event loop. A file given by path
 * is re-read when it changes (looked at by Basic requests, at most once a second: a change is in
 * force within a second, ./watched-file.ts); the cache is then emptied.
 */
import { createHmac, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { BindleError } from '../../core/errors/bindle-error.js';
import { credentialsFor, decodeBasic, parseAuthorization } from './authorization-header.js';
import { bcryptPool } from './bcrypt-pool.js';
import type { Principal, SchemeAuthenticator } from './types.js';
import { fixedContents, WatchedFile, type FileCheckOptions, type Reloadable, type ReloadFailureReporter } from './watched-file.js';

export interface HtpasswdOptions {
  /**
   * How long a successful verification is remembered, in milliseconds (default 60 s; 0 turns
   * the cache off). The cache is keyed by an HMAC (with a random per-process key) of the
   * credentials, never the credentials themselves, so it only ever answers for exactly the
   * credentials that were verified; failures are never cached. When the file changes, the cache
   * is emptied: a user removed from it, or whose password changed, loses access as soon as the
   * change is seen (within the file check interval, `fileChecks`).
   */
  readonly cacheTtlMs?: number;
  /** Most cached verifications kept; the oldest is dropped first (default 1024). */
  readonly cacheMaxEntries?: number;
  /** Clock for cache expiry, in milliseconds (default Date.now). */
  readonly now?: () => number;
  /**
   * Told when a changed file cannot be used (unreadable or invalid: the error names the file and
   * the line); the last good version stays in force. Default: a process warning.
   */
  readonly onReloadFailure?: ReloadFailureReporter;
  /** How often a file given by path is looked at (./watched-file.ts; default: at most once a second). */
  readonly fileChecks?: FileCheckOptions;
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const DEFAULT_COST = 10;
/**
 * The highest bcrypt cost accepted: each step doubles the time of a check, and the file's highest
 * cost is also paid at load for the decoy, so cost 31 would stall the start for days.
 */
const MAX_COST = 16;

/** Names the kind of an unsupported htpasswd hash, for the load error. */
function hashKind(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'Apache MD5 ($apr1$)';
  if (hash.startsWith('{SHA}')) return 'SHA-1 ({SHA})';
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return `SHA-crypt (${hash.slice(0, 3)})`;
  if (hash.startsWith('$1$')) return 'MD5-crypt ($1$)';
  if (hash.startsWith('$2')) return 'malformed bcrypt';
  return 'crypt or plain-text';
}

/** The users' hashes and the decoy: what one version of the file says. */
interface HtpasswdTable {
  readonly hashes: ReadonlyMap<string, string>;
  /** A hash of a random secret with the file's highest cost: unknown users pay the same bcrypt time. */
  readonly decoy: string;
}

export class HtpasswdAuthenticator implements SchemeAuthenticator {
  readonly scheme = 'basic' as const;
  /** The users: the file's last good version, or the parsed text. */
  readonly #table: Reloadable<HtpasswdTable>;
  /** The table generation the cache's entries were verified against. */
  #cacheGeneration: number;
  readonly #cache = new Map<string, { id: string; expiresAt: number }>();
  readonly #cacheKey = randomBytes(32);
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  #hits = 0;
  #misses = 0;

  private constructor(table: Reloadable<HtpasswdTable>, options: HtpasswdOptions) {
    this.#table = table;
    this.#cacheGeneration = table.generation;
    this.#ttlMs = options.cacheTtlMs ?? 60_000;
    this.#maxEntries = options.cacheMaxEntries ?? 1024;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Reads an htpasswd file; an unreadable file or an invalid entry is invalid_config. The file is
   * re-read when a check (`options.fileChecks`) finds it changed; a change that makes it unreadable or invalid keeps the last good
   * version (and still empties the cache) and is reported to `options.onReloadFailure`.
   */
  static async load(path: string, options: HtpasswdOptions = {}): Promise<HtpasswdAuthenticator> {
    return new HtpasswdAuthenticator(await WatchedFile.load(path, 'htpasswd file', parseTable, options.onReloadFailure, options.fileChecks), options);
  }

  /**
   * Parses htpasswd text: `user:hash` per line, blank lines and `#` comments ignored. Only bcrypt
   * hashes ($2y$, $2a$, $2b$) of cost 4 to 16 are accepted; anything else, a duplicate user or a
   * line without a colon is invalid_config naming `origin` and the line.
   */
  static async parse(text: string, origin: string, options: HtpasswdOptions = {}): Promise<HtpasswdAuthenticator> {
    return new HtpasswdAuthenticator(fixedContents(await parseTable(text, origin)), options);
  }

  /** Number of users in the file. */
  get size(): number {
    return this.#table.value.hashes.size;
  }

  /** Number of verifications currently remembered (expired ones are dropped when next looked up). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** Look-ups of the verification cache (every Basic credential that parses is one), for metrics. */
  cacheLookups(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }

  async authenticate(authorizationHeader: string | undefined): Promise<Principal | undefined> {
    const parsed = parseAuthorization(authorizationHeader);
    if (parsed === undefined) return undefined;
    const { user, password } = decodeBasic(credentialsFor(parsed, this.scheme));
    await this.#table.refresh();
    if (this.#table.generation !== this.#cacheGeneration) {
      this.#cache.clear();
      this.#cacheGeneration = this.#table.generation;
    }

    const key = createHmac('sha256', this.#cacheKey).update(parsed.credentials).digest('base64');
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      if (cached.expiresAt > this.#now()) {
        this.#hits++;
        return { id: cached.id, kind: 'basic' };
      }
      this.#cache.delete(key);
    }
    this.#misses++;

    const { hashes, decoy } = this.#table.value;
    const hash = hashes.get(user);
    // bcrypt compares its digests in constant time; an unknown user is checked against the decoy
    // so that the response time does not tell whether the user exists.
    const matches = await bcryptPool().compare(password, hash ?? decoy);
    if (hash === undefined || !matches) throw new BindleError('unauthenticated', 'invalid user name or password');
    // The file may have changed while bcrypt ran: remember only what the current version says.
    if (this.#table.value.hashes.get(user) !== hash) throw new BindleError('unauthenticated', 'invalid user name or password');

    if (this.#ttlMs > 0) {
      this.#cache.set(key, { id: user, expiresAt: this.#now() + this.#ttlMs });
      while (this.#cache.size > this.#maxEntries) {
        const oldest = this.#cache.keys().next();
        if (oldest.done === true) break;
        this.#cache.delete(oldest.value);
      }
    }
    return { id: user, kind: 'basic' };
  }
}

async function parseTable(text: string, origin: string): Promise<HtpasswdTable> {
  const hashes = new Map<string, string>();
  let cost = 0;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${origin} line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new BindleError('invalid_config', `${where}: expected user:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (hashes.has(user)) throw new BindleError('invalid_config', `${where}: user "${user}" appears twice`);
    const m = BCRYPT.exec(hash);
    if (m === null) {
      throw new BindleError(
        'invalid_config',
        `${where}: user "${user}" has an unsupported ${hashKind(hash)} hash; only bcrypt ($2y$, $2a$, $2b$) is accepted (create entries with 'htpasswd -B')`,
      );
    }
    const entryCost = Number(m[1]);
    if (entryCost < 4 || entryCost > MAX_COST) {
      throw new BindleError('invalid_config', `${where}: user "${user}" has a bcrypt cost of ${entryCost}; it must be 4 to ${MAX_COST}`);
    }
    cost = Math.max(cost, entryCost);
    hashes.set(user, hash);
  }
  const decoy = await bcrypt.hash(randomBytes(16).toString('hex'), cost === 0 ? DEFAULT_COST : cost);
  return { hashes, decoy };
}
