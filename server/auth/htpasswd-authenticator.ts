/**
 * HTTP Basic authentication against an htpasswd file (bcrypt entries only), with a short-lived
 * cache of successful verifications so that bcrypt's deliberate cost is not paid on every request.
 * bcrypt runs on worker threads (bcrypt-pool.ts), never on the event loop. A file given by path
 * is re-read when it changes (checked on each Basic request); the cache is then emptied.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { BindleError } from '../../core/errors/bindle-error.js';
import { credentialsFor, decodeBasic, parseAuthorization } from './authorization-header.js';
import { bcryptPool } from './bcrypt-pool.js';
import type { Principal, SchemeAuthenticator } from './types.js';

export interface HtpasswdOptions {
  /**
   * How long a successful verification is remembered, in milliseconds (default 60 s; 0 turns
   * the cache off). The cache is keyed by an HMAC (with a random per-process key) of the
   * credentials, never the credentials themselves, so it only ever answers for exactly the
   * credentials that were verified; failures are never cached. When the file changes, the cache
   * is emptied: a user removed from it, or whose password changed, loses access at once.
   */
  readonly cacheTtlMs?: number;
  /** Most cached verifications kept; the oldest is dropped first (default 1024). */
  readonly cacheMaxEntries?: number;
  /** Clock for cache expiry, in milliseconds (default Date.now). */
  readonly now?: () => number;
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const DEFAULT_COST = 10;

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

/** What identifies one version of a file on disk. */
function fileVersion(s: { mtimeMs: number; size: number; ino: number }): string {
  return `${s.mtimeMs}:${s.size}:${s.ino}`;
}

export class HtpasswdAuthenticator implements SchemeAuthenticator {
  readonly scheme = 'basic' as const;
  #table: HtpasswdTable;
  readonly #cache = new Map<string, { id: string; expiresAt: number }>();
  readonly #cacheKey = randomBytes(32);
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** The file and the version of it #table holds; undefined for parsed text. */
  readonly #file: { readonly path: string; version: string } | undefined;
  #reloading: Promise<void> | undefined;
  #hits = 0;
  #misses = 0;

  private constructor(table: HtpasswdTable, options: HtpasswdOptions, file?: { path: string; version: string }) {
    this.#table = table;
    this.#ttlMs = options.cacheTtlMs ?? 60_000;
    this.#maxEntries = options.cacheMaxEntries ?? 1024;
    this.#now = options.now ?? Date.now;
    this.#file = file;
  }

  /**
   * Reads an htpasswd file; an unreadable file or an invalid entry is invalid_config. The file is
   * re-read whenever it changes; a change that makes it unreadable or invalid keeps the last good
   * version (and still empties the cache).
   */
  static async load(path: string, options: HtpasswdOptions = {}): Promise<HtpasswdAuthenticator> {
    const { table, version } = await HtpasswdAuthenticator.#read(path);
    return new HtpasswdAuthenticator(table, options, { path, version });
  }

  static async #read(path: string): Promise<{ table: HtpasswdTable; version: string }> {
    let text: string;
    let version: string;
    try {
      version = fileVersion(await stat(path));
      text = await readFile(path, 'utf8');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new BindleError('invalid_config', `cannot read htpasswd file ${path}: ${reason}`, { cause: err });
    }
    return { table: await parseTable(text, `htpasswd file ${path}`), version };
  }

  /**
   * Parses htpasswd text: `user:hash` per line, blank lines and `#` comments ignored. Only bcrypt
   * hashes ($2y$, $2a$, $2b$) are accepted; anything else, a duplicate user or a line without a
   * colon is invalid_config naming `origin` and the line.
   */
  static async parse(text: string, origin: string, options: HtpasswdOptions = {}): Promise<HtpasswdAuthenticator> {
    return new HtpasswdAuthenticator(await parseTable(text, origin), options);
  }

  /** Number of users in the file. */
  get size(): number {
    return this.#table.hashes.size;
  }

  /** Number of verifications currently remembered (expired ones are dropped when next looked up). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** Look-ups of the verification cache (every Basic credential that parses is one), for metrics. */
  cacheLookups(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }

  /** Re-reads the file when its version on disk differs from the one loaded (one reload at a time). */
  async #refresh(): Promise<void> {
    const file = this.#file;
    if (file === undefined) return;
    if (this.#reloading !== undefined) return this.#reloading;
    let version: string;
    try {
      version = fileVersion(await stat(file.path));
    } catch {
      version = 'missing';
    }
    if (version === file.version) return;
    this.#reloading = (async () => {
      this.#cache.clear();
      file.version = version;
      try {
        this.#table = (await HtpasswdAuthenticator.#read(file.path)).table;
      } catch {
        // The last good version stays in force; the next change is picked up again.
      }
    })().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async authenticate(authorizationHeader: string | undefined): Promise<Principal | undefined> {
    const parsed = parseAuthorization(authorizationHeader);
    if (parsed === undefined) return undefined;
    const { user, password } = decodeBasic(credentialsFor(parsed, this.scheme));
    await this.#refresh();

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

    const { hashes, decoy } = this.#table;
    const hash = hashes.get(user);
    // bcrypt compares its digests in constant time; an unknown user is checked against the decoy
    // so that the response time does not tell whether the user exists.
    const matches = await bcryptPool().compare(password, hash ?? decoy);
    if (hash === undefined || !matches) throw new BindleError('unauthenticated', 'invalid user name or password');
    // The file may have changed while bcrypt ran: remember only what the current version says.
    if (this.#table.hashes.get(user) !== hash) throw new BindleError('unauthenticated', 'invalid user name or password');

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
    if (entryCost < 4 || entryCost > 31) {
      throw new BindleError('invalid_config', `${where}: user "${user}" has a bcrypt cost of ${entryCost}; it must be 4 to 31`);
    }
    cost = Math.max(cost, entryCost);
    hashes.set(user, hash);
  }
  const decoy = await bcrypt.hash(randomBytes(16).toString('hex'), cost === 0 ? DEFAULT_COST : cost);
  return { hashes, decoy };
}
