/**
 * FileTrustStore: the trusted keys from a reference-format keyring file, reloaded without a
 * restart — on demand (`reload()`, which the server calls on SIGHUP) and when the file changes.
 * Changes are noticed by watching the file's directory (so replacing the file by an atomic
 * rename, or Kubernetes swapping a mounted ConfigMap's `..data` link, is seen too) and are
 * debounced. A reload that fails keeps the keys loaded before.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { BindleError } from '../errors/bindle-error.js';
import { Keyring } from './keyring.js';
import { readKeyFile, readKeyFileIfExists } from './key-file-io.js';
import type { TrustStore } from './trust-store.js';

/** What one reload did. */
export type TrustReload =
  | { readonly ok: true; readonly changed: boolean; readonly keys: number }
  | { readonly ok: false; readonly error: BindleError; readonly keys: number };

export interface FileTrustStoreOptions {
  /**
   * The file must exist at open (default false: a missing file is an empty keyring). For a
   * keyring the user named explicitly, where a missing file is a mistake, not "no keys".
   */
  readonly mustExist?: boolean;
  /** Reload when the file changes (default true). */
  readonly watch?: boolean;
  /** Quiet time after the last change event before reloading (default 250 ms). */
  readonly debounceMs?: number;
  /** Told about every reload the watcher triggers (not those `reload()` callers await themselves). */
  readonly onWatchReload?: (result: TrustReload) => void;
  /** Told when the directory cannot be watched (reloads then happen only through `reload()`). */
  readonly onWatchUnavailable?: (error: Error) => void;
}

export class FileTrustStore implements TrustStore {
  readonly path: string;
  #keyring: Keyring;
  #text: string | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(path: string, keyring: Keyring, text: string | undefined) {
    this.path = path;
    this.#keyring = keyring;
    this.#text = text;
  }

  /**
   * Loads the keyring file and starts watching it. A missing file is an empty keyring, or
   * `invalid_key_file` with `mustExist`; an invalid file is `invalid_key_file`.
   */
  static async open(path: string, opts: FileTrustStoreOptions = {}): Promise<FileTrustStore> {
    const text = opts.mustExist === true ? await readKeyFile(path, 'keyring') : await readKeyFileIfExists(path, 'keyring');
    const store = new FileTrustStore(path, text === undefined ? new Keyring() : Keyring.fromText(path, text), text);
    if (opts.watch ?? true) store.#watch(opts);
    return store;
  }

  current(): Keyring {
    return this.#keyring;
  }

  /** True while the file's directory is being watched. */
  get watching(): boolean {
    return this.#watcher !== undefined;
  }

  /**
   * Reads the file again. A missing, unreadable or invalid file keeps the current keys and
   * reports the error; reloads run one at a time, in call order.
   */
  reload(): Promise<TrustReload> {
    const next = this.#queue.then(() => this.#reloadNow());
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Stops watching; `current()` keeps answering with the last keys. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  async #reloadNow(): Promise<TrustReload> {
    const keys = this.#keyring.size;
    let text: string | undefined;
    try {
      text = await readKeyFileIfExists(this.path, 'keyring');
      if (text === undefined) {
        throw new BindleError(
          'invalid_key_file',
          `keyring ${this.path} does not exist; write an empty keyring (version = "1.0") to trust no keys`,
        );
      }
      if (text === this.#text) return { ok: true, changed: false, keys };
      this.#keyring = Keyring.fromText(this.path, text);
      this.#text = text;
      return { ok: true, changed: true, keys: this.#keyring.size };
    } catch (err) {
      const error = err instanceof BindleError ? err : new BindleError('invalid_key_file', `keyring ${this.path}: ${String(err)}`);
      return { ok: false, error, keys };
    }
  }

  #watch(opts: FileTrustStoreOptions): void {
    const name = basename(this.path);
    const debounceMs = opts.debounceMs ?? 250;
    try {
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        // Our file, Kubernetes' `..data` links, or an unnamed event.
        if (file !== null && file !== name && !file.startsWith('..')) return;
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => {
          if (this.#closed) return;
          void this.reload().then((result) => {
            if (!this.#closed && (!result.ok || result.changed)) opts.onWatchReload?.(result);
          });
        }, debounceMs);
      });
      this.#watcher.on('error', (err: Error) => {
        this.#watcher?.close();
        this.#watcher = undefined;
        opts.onWatchUnavailable?.(err);
      });
    } catch (err) {
      this.#watcher = undefined;
      opts.onWatchUnavailable?.(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
