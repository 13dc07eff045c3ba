/**
 * The contents of a file the authenticators read (htpasswd, static tokens), kept current: each
 * `refresh()` (called on each request that needs them) makes sure the file was stat'ed at most
 * one check interval (1 s by default) before, and re-reads it when its version on disk (mtime,
 * ctime, size, device and inode) differs from the one loaded. So the file is stat'ed at most once per interval
 * however many requests arrive (concurrent ones share the stat in flight), and a change is in
 * force for every request that starts one interval after it. A new version that cannot be read
 * or parsed leaves the last good contents in force and is reported, never silently.
 */
import { readFile, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { BindleError } from '../../core/errors/bindle-error.js';

/** Called with the error (invalid_config naming the file and the fault) when a changed file cannot be used. */
export type ReloadFailureReporter = (error: BindleError) => void;

/** How long a change to a watched file may go unseen, by default: the file is stat'ed at most once per this. */
export const DEFAULT_CHECK_INTERVAL_MS = 1000;

/** How often a WatchedFile looks at its file. */
export interface FileCheckOptions {
  /**
   * The file is stat'ed at most once per this many milliseconds, and a change is seen by every
   * `refresh()` called at least this long after it (default DEFAULT_CHECK_INTERVAL_MS; 0 stats on
   * every `refresh()`).
   */
  readonly intervalMs?: number;
  /** A monotonic clock in milliseconds (default performance.now). */
  readonly now?: () => number;
}

/**
 * Parsed contents that may change. Contract: `value` is the last good version; after `refresh()`
 * resolves it reflects the file as it was at some moment no earlier than the check interval
 * before `refresh()` was called (or the last good version, if that one could not be used);
 * `generation` grows with every new version seen, usable or not. A version that cannot be used
 * is reported, not thrown.
 */
export interface Reloadable<T> {
  readonly value: T;
  readonly generation: number;
  refresh(): Promise<void>;
}

const DONE: Promise<void> = Promise.resolve();

/** Contents that never change (parsed from text rather than read from a file). */
export function fixedContents<T>(value: T): Reloadable<T> {
  return { value, generation: 0, refresh: () => DONE };
}

/** The default reporter: a process warning, which the server's log records. */
function warn(error: BindleError): void {
  process.emitWarning(error);
}

/** What identifies one version of a file on disk ('missing' when it cannot be stat'ed). */
async function versionOf(path: string): Promise<string> {
  try {
    const s = await stat(path);
    // ctime too: a rewrite in place of the same size with its mtime set back (`touch -r`,
    // `cp -p`, `rsync -t --inplace`) changes it, and no one can set it.
    return `${s.mtimeMs}:${s.ctimeMs}:${s.size}:${s.dev}:${s.ino}`;
  } catch {
    return 'missing';
  }
}

export class WatchedFile<T> implements Reloadable<T> {
  readonly path: string;
  #value: T;
  #version: string;
  #generation = 0;
  /** When the latest check (a stat, and a reload if the file changed) began, on `#now`. */
  #checkStartedAt: number;
  /** The latest check while it runs; a new one waits for it. */
  #checking: Promise<void> | undefined;
  readonly #what: string;
  readonly #parse: (text: string, origin: string) => T | Promise<T>;
  readonly #onReloadFailure: ReloadFailureReporter;
  readonly #intervalMs: number;
  readonly #now: () => number;

  private constructor(
    path: string,
    what: string,
    parse: (text: string, origin: string) => T | Promise<T>,
    loaded: { value: T; version: string; checkedAt: number },
    onReloadFailure: ReloadFailureReporter,
    checks: FileCheckOptions,
  ) {
    this.path = path;
    this.#what = what;
    this.#parse = parse;
    this.#value = loaded.value;
    this.#version = loaded.version;
    this.#checkStartedAt = loaded.checkedAt;
    this.#onReloadFailure = onReloadFailure;
    this.#intervalMs = checks.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.#now = checks.now ?? (() => performance.now());
  }

  /**
   * Reads and parses the file now; an unreadable file is invalid_config (`cannot read <what>
   * <path>`), a parse error propagates. `what` names the kind of file in messages ("htpasswd
   * file"); `parse` gets the text and `<what> <path>` to name in its errors. Failures of later
   * versions go to `onReloadFailure` (default: a process warning); `checks` says how often the
   * file is looked at.
   */
  static async load<T>(
    path: string,
    what: string,
    parse: (text: string, origin: string) => T | Promise<T>,
    onReloadFailure: ReloadFailureReporter = warn,
    checks: FileCheckOptions = {},
  ): Promise<WatchedFile<T>> {
    const checkedAt = (checks.now ?? (() => performance.now()))();
    const version = await versionOf(path);
    const value = await WatchedFile.#read(path, what, parse);
    return new WatchedFile(path, what, parse, { value, version, checkedAt }, onReloadFailure, checks);
  }

  static async #read<T>(path: string, what: string, parse: (text: string, origin: string) => T | Promise<T>): Promise<T> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new BindleError('invalid_config', `cannot read ${what} ${path}: ${reason}`, { cause: err });
    }
    return parse(text, `${what} ${path}`);
  }

  get value(): T {
    return this.#value;
  }

  get generation(): number {
    return this.#generation;
  }

  /**
   * Resolves once the contents reflect a stat of the file begun no earlier than the check
   * interval before this call: at once when the latest finished check began within it, with the
   * check in flight when that one did, or else after a new check (begun once the one in flight,
   * if any, ends: one check at a time). Never rejects.
   */
  refresh(): Promise<void> {
    const now = this.#now();
    if (now - this.#checkStartedAt < this.#intervalMs) return this.#checking ?? DONE;
    this.#checkStartedAt = now;
    const previous = this.#checking ?? DONE;
    const check = previous.then(() => this.#check());
    this.#checking = check;
    const settled = (): void => {
      if (this.#checking === check) this.#checking = undefined;
    };
    check.then(settled, settled);
    return check;
  }

  /** Stats the file and re-reads it when its version on disk differs from the one loaded. */
  async #check(): Promise<void> {
    const version = await versionOf(this.path);
    if (version === this.#version) return;
    this.#version = version;
    this.#generation++;
    try {
      this.#value = await WatchedFile.#read(this.path, this.#what, this.#parse);
    } catch (err) {
      // The last good version stays in force; the next change is picked up again.
      this.#onReloadFailure(
        err instanceof BindleError
          ? err
          : new BindleError('invalid_config', `${this.#what} ${this.path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
      );
    }
  }
}
