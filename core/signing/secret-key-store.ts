/**
 * The SecretKeyStore: a party's own signing keys, as kept in a reference-format secret-key file
 * (mode 0600), with the reference's rules for picking a key by role and label.
 */
import type { SecretKeyEntry, SecretKeyFile, SignatureRole } from '../../schema/index.js';
import { KEY_FILE_VERSION, parseSecretKeyFile, renderSecretKeyFile } from '../codec/key-file-codec.js';
import { createKeyFileExclusive, parseKeyFileText, readKeyFile, readKeyFileIfExists, writeKeyFile } from './key-file-io.js';
import { createSecretKey, publicKeyOf } from './keys.js';

/**
 * How to narrow the choice of key by label (the reference's LabelMatch). `exact` is a
 * case-sensitive equality; `partial` is a case-insensitive substring ("pika" matches
 * "Pikachu", as the reference documents, although its code compares case-sensitively).
 * When both are given, both must hold.
 */
export interface LabelMatch {
  exact?: string;
  partial?: string;
}

function copyEntry(entry: SecretKeyEntry): SecretKeyEntry {
  return { label: entry.label, keypair: entry.keypair, roles: [...entry.roles] };
}

function parse(path: string, text: string): SecretKeyFile {
  return parseKeyFileText(path, 'secret key file', text, (t) => parseSecretKeyFile(t));
}

function labelMatches(label: string, match: LabelMatch | undefined): boolean {
  if (match === undefined) return true;
  if (match.exact !== undefined && label !== match.exact) return false;
  if (match.partial !== undefined && !label.toLowerCase().includes(match.partial.toLowerCase())) return false;
  return true;
}

/**
 * A set of secret signing keys.
 *
 * Contracts:
 * - Loading keeps every entry exactly as in the file; a corrupt keypair is reported
 *   (`corrupt_key`) only when that key is used.
 * - `add` accepts only a usable keypair (else `corrupt_key`); adding a key already present
 *   is a no-op.
 * - Files are written atomically with mode 0600.
 */
export class SecretKeyStore {
  readonly #entries: SecretKeyEntry[] = [];

  constructor(doc?: SecretKeyFile) {
    for (const entry of doc?.key ?? []) this.#entries.push(copyEntry(entry));
  }

  /** Loads a secret-key file. Unreadable, missing or invalid files → `invalid_key_file` naming the path. */
  static async load(path: string): Promise<SecretKeyStore> {
    return new SecretKeyStore(parse(path, await readKeyFile(path, 'secret key file')));
  }

  /**
   * Loads the secret-key file at `path`, or, when there is none, creates it holding one new key
   * with `label` and `roles`. Creation is atomic and never replaces a file another process
   * created meanwhile (that file is loaded instead, with `created: false`).
   */
  static async loadOrCreate(
    path: string,
    label: string,
    roles: SignatureRole[],
  ): Promise<{ store: SecretKeyStore; created: boolean }> {
    const existing = await readKeyFileIfExists(path, 'secret key file');
    if (existing !== undefined) return { store: new SecretKeyStore(parse(path, existing)), created: false };
    const store = new SecretKeyStore();
    store.add(createSecretKey(label, roles));
    if (await createKeyFileExclusive(path, renderSecretKeyFile(store.toDocument()))) return { store, created: true };
    return { store: await SecretKeyStore.load(path), created: false };
  }

  /** Writes the store to `path` atomically, mode 0600. */
  async save(path: string): Promise<void> {
    await writeKeyFile(path, renderSecretKeyFile(this.toDocument()));
  }

  /** Copies of the entries, in order. */
  entries(): SecretKeyEntry[] {
    return this.#entries.map(copyEntry);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Adds a key (see the class contract). Throws `corrupt_key` for an unusable keypair. */
  add(entry: SecretKeyEntry): void {
    const key = publicKeyOf(entry);
    for (const existing of this.#entries) {
      try {
        if (publicKeyOf(existing) === key) return;
      } catch {
        // a corrupt entry already in the store is not this key
      }
    }
    this.#entries.push(copyEntry(entry));
  }

  /** The first key, in file order, that has `role` and whose label matches `label`. */
  firstMatching(role: SignatureRole, label?: LabelMatch): SecretKeyEntry | undefined {
    const found = this.#entries.find((e) => e.roles.includes(role) && labelMatches(e.label, label));
    return found === undefined ? undefined : copyEntry(found);
  }

  /** Every key that has `role` and whose label matches `label`, in file order. */
  allMatching(role: SignatureRole, label?: LabelMatch): SecretKeyEntry[] {
    return this.#entries.filter((e) => e.roles.includes(role) && labelMatches(e.label, label)).map(copyEntry);
  }

  /** The store as a reference-format document (`version = "1.0"`). */
  toDocument(): SecretKeyFile {
    return { version: KEY_FILE_VERSION, key: this.entries() };
  }
}
