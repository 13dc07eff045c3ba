/**
 * Bearer authentication against a file of static tokens. The file never holds a token itself,
 * only its SHA-256: one `name:sha256hex-of-token` per line, `#` comments and blank lines ignored.
 * Create an entry with e.g. `printf %s "$TOKEN" | sha256sum`. A file given by path is re-read
 * when it changes (looked at by Bearer requests, at most once a second, ./watched-file.ts), so a
 * token removed from it is refused by every request that starts a second after the change.
 */
import { createHash } from 'node:crypto';
import { BindleError } from '../../core/errors/bindle-error.js';
import { credentialsFor, parseAuthorization } from './authorization-header.js';
import type { Principal, SchemeAuthenticator } from './types.js';
import { fixedContents, WatchedFile, type FileCheckOptions, type Reloadable, type ReloadFailureReporter } from './watched-file.js';

const NAME = /^[^\s:#][^\s:]*$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/** SHA-256 of a token as lowercase hex: what a token file line holds. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class StaticTokenAuthenticator implements SchemeAuthenticator {
  readonly scheme = 'bearer' as const;
  /** Token digest → name. Looking up the digest (not the token) leaks nothing useful through timing. */
  readonly #names: Reloadable<ReadonlyMap<string, string>>;

  private constructor(names: Reloadable<ReadonlyMap<string, string>>) {
    this.#names = names;
  }

  /**
   * Reads a token file; an unreadable file or an invalid line is invalid_config. The file is
   * re-read when a check (`fileChecks`, default at most once a second) finds it changed; a change
   * that makes it unreadable or invalid keeps the last good version and is reported to
   * `onReloadFailure` (default: a process warning).
   */
  static async load(path: string, onReloadFailure?: ReloadFailureReporter, fileChecks?: FileCheckOptions): Promise<StaticTokenAuthenticator> {
    return new StaticTokenAuthenticator(await WatchedFile.load(path, 'token file', parseTokens, onReloadFailure, fileChecks));
  }

  /**
   * Parses token-file text. A line that is not `name:sha256hex`, a duplicate name or a duplicate
   * digest (two names for one token) is invalid_config naming `origin` and the line.
   */
  static parse(text: string, origin: string): StaticTokenAuthenticator {
    return new StaticTokenAuthenticator(fixedContents(parseTokens(text, origin)));
  }

  /** Number of tokens in the file. */
  get size(): number {
    return this.#names.value.size;
  }

  async authenticate(authorizationHeader: string | undefined): Promise<Principal | undefined> {
    const parsed = parseAuthorization(authorizationHeader);
    if (parsed === undefined) return undefined;
    const digest = tokenDigest(credentialsFor(parsed, this.scheme));
    await this.#names.refresh();
    const name = this.#names.value.get(digest);
    if (name === undefined) throw new BindleError('unauthenticated', 'unknown bearer token');
    return { id: name, kind: 'token' };
  }
}

/** Token-file text as digest → name (see StaticTokenAuthenticator.parse). */
function parseTokens(text: string, origin: string): ReadonlyMap<string, string> {
  const names = new Map<string, string>();
  const seen = new Set<string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${origin} line ${i + 1}`;
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim();
    const digest = colon < 0 ? '' : line.slice(colon + 1).trim();
    if (!NAME.test(name) || !SHA256_HEX.test(digest)) {
      throw new BindleError('invalid_config', `${where}: expected name:sha256hex-of-token (64 hex digits)`);
    }
    if (seen.has(name)) throw new BindleError('invalid_config', `${where}: name "${name}" appears twice`);
    const lower = digest.toLowerCase();
    const other = names.get(lower);
    if (other !== undefined) throw new BindleError('invalid_config', `${where}: "${name}" has the same token as "${other}"`);
    seen.add(name);
    names.set(lower, name);
  }
  return names;
}
