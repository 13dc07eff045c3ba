/**
 * The contents of a file the authenticators read (htpasswd, static tokens), kept current: each
 * `refresh()` (called on each request that needs them) stats the file and re-reads it when its
 * version on disk (mtime, size, inode) differs from the one loaded. A new version that cannot be
 * read or parsed leaves the last good contents in force and is reported, never silently.
 */
import { readFile, stat } from 'node:fs/promises';
import { BindleError } from '../../core/errors/bindle-error.js';

/** Called with the error (invalid_config naming the file and the fault) when a changed file cannot be used. */
export type ReloadFailureReporter = (error: BindleError) => void;

/**
 * Parsed contents that may change. Contract: `value` is the last good version; after `refresh()`
 * resolves it reflects the file as it was when `refresh()` was called (or the last good version,
 * if that one could not be used); `generation` grows with every new version seen, usable or not.
 * A version that cannot be used is reported, not thrown.
 */
export interface Reloadable<T> {
  readonly value: T;
  readonly generation: number;
  refresh(): Promise<void>;
}

/** Contents that never change (parsed from text rather than read from a file). */
export function fixedContents<T>(value: T): Reloadable<T> {
  return { value, generation: 0, refresh: () => Promise.resolve() };
}

/** The default reporter: a process warning, which the server's log records. */
function warn(error: BindleError): void {
  process.emitWarning(error);
}

/** What identifies one version of a file on disk ('missing' when it cannot be stat'ed). */
async function versionOf(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return 'missing';
  }
}

export class WatchedFile<T> implements Reloadable<T> {
  readonly path: string;
  #value: T;
  #version: string;
  #generation = 0;
  #reloading: Promise<void> | undefined;
  readonly #what: string;
  readonly #parse: (text: string, origin: string) => T | Promise<T>;
  readonly #onReloadFailure: ReloadFailureReporter;

  private constructor(
    path: string,
    what: string,
    parse: (text: string, origin: string) => T | Promise<T>,
    loaded: { value: T; version: string },
    onReloadFailure: ReloadFailureReporter,
  ) {
    this.path = path;
    this.#what = what;
    this.#parse = parse;
    this.#value = loaded.value;
    this.#version = loaded.version;
    this.#onReloadFailure = onReloadFailure;
  }

  /**
   * Reads and parses the file now; an unreadable file is invalid_config (`cannot read <what>
   * <path>`), a parse error propagates. `what` names the kind of file in messages ("htpasswd
   * file"); `parse` gets the text and `<what> <path>` to name in its errors. Failures of later
   * versions go to `onReloadFailure` (default: a process warning).
   */
  static async load<T>(
    path: string,
    what: string,
    parse: (text: string, origin: string) => T | Promise<T>,
    onReloadFailure: ReloadFailureReporter = warn,
  ): Promise<WatchedFile<T>> {
    const version = await versionOf(path);
    const value = await WatchedFile.#read(path, what, parse);
    return new WatchedFile(path, what, parse, { value, version }, onReloadFailure);
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

  /** Re-reads the file when its version on disk differs from the one loaded (one reload at a time). */
  async refresh(): Promise<void> {
    if (this.#reloading !== undefined) return this.#reloading;
    const version = await versionOf(this.path);
    // A reload may have started while this one stat'ed: its result is what this caller should see.
    if (this.#reloading !== undefined) return this.#reloading;
    if (version === this.#version) return;
    this.#version = version;
    this.#generation++;
    this.#reloading = WatchedFile.#read(this.path, this.#what, this.#parse)
      .then(
        (value) => {
          this.#value = value;
        },
        (err: unknown) => {
          // The last good version stays in force; the next change is picked up again.
          this.#onReloadFailure(
            err instanceof BindleError
              ? err
              : new BindleError('invalid_config', `${this.#what} ${this.path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
          );
        },
      )
      .finally(() => {
        this.#reloading = undefined;
      });
    return this.#reloading;
  }
}
