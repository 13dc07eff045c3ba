/**
 * The Keyring: the public keys a party trusts, with their labels and roles, as kept in a
 * reference-format keyring file. Keys are compared by their decoded bytes, never by text.
 */
import type { KeyEntry, KeyRing, SignatureRole } from '../../schema/index.js';
import { KEY_FILE_VERSION, parseKeyRing, renderKeyRing } from '../codec/key-file-codec.js';
import { parseKeyFileText, readKeyFile, readKeyFileIfExists, writeKeyFile } from './key-file-io.js';
import { decodePublicKey } from './keys.js';

function copyEntry(entry: KeyEntry): KeyEntry {
  const out: KeyEntry = { label: entry.label, roles: [...entry.roles], key: entry.key };
  if (entry.labelSignature !== undefined) out.labelSignature = entry.labelSignature;
  return out;
}

/** Hex of a key's decoded bytes, or undefined when the key is malformed. */
function keyIdentity(base64: string): string | undefined {
  try {
    return Buffer.from(decodePublicKey(base64)).toString('hex');
  } catch {
    return undefined;
  }
}

/**
 * A set of trusted public keys.
 *
 * Contracts:
 * - Constructing from a document keeps every entry as it is, malformed ones included (so a
 *   reference file loads and saves unchanged); malformed entries never match in `contains`.
 * - `add` accepts only well-formed keys (canonical base64 of a valid, non-small-order Ed25519
 *   point; otherwise `corrupt_key`); adding a key already present is a no-op, whatever its
 *   label or roles. A label signature is kept as given; check it with `verifyLabelSignature`.
 * - Instances are never changed by `withRoles` or `merge`, which return new keyrings.
 */
export class Keyring {
  readonly #entries: KeyEntry[] = [];
  /** Key identity (hex of the decoded bytes) → the first well-formed entry holding it. */
  readonly #known = new Map<string, KeyEntry>();

  constructor(doc?: KeyRing) {
    for (const entry of doc?.key ?? []) this.#push(entry);
  }

  /** Loads a keyring file. Unreadable, missing or invalid files → `invalid_key_file` naming the path. */
  static async load(path: string): Promise<Keyring> {
    return Keyring.fromText(path, await readKeyFile(path, 'keyring'));
  }

  /** Loads a keyring file, or returns an empty keyring when the file does not exist. */
  static async loadOrEmpty(path: string): Promise<Keyring> {
    const text = await readKeyFileIfExists(path, 'keyring');
    return text === undefined ? new Keyring() : Keyring.fromText(path, text);
  }

  /** Parses the text of the keyring file at `path`; invalid text → `invalid_key_file` naming the path. */
  static fromText(path: string, text: string): Keyring {
    return new Keyring(parseKeyFileText(path, 'keyring', text, (t) => parseKeyRing(t)));
  }

  /** Writes the keyring to `path` atomically, mode 0600. */
  async save(path: string): Promise<void> {
    await writeKeyFile(path, renderKeyRing(this.toDocument()));
  }

  /** Copies of the entries, in order. */
  entries(): KeyEntry[] {
    return this.#entries.map(copyEntry);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Adds a key (see the class contract). Throws `corrupt_key` for a malformed key. */
  add(entry: KeyEntry): void {
    const identity = Buffer.from(decodePublicKey(entry.key, `keyring entry ${JSON.stringify(entry.label)}`)).toString('hex');
    if (this.#known.has(identity)) return;
    this.#push(entry);
  }

  /** True when a well-formed entry holds the same key bytes as `publicKeyBase64` (false if that is malformed). */
  contains(publicKeyBase64: string): boolean {
    const identity = keyIdentity(publicKeyBase64);
    return identity !== undefined && this.#known.has(identity);
  }

  /** A copy of the well-formed entry holding the same key bytes as `publicKeyBase64`; undefined when none does or it is malformed. */
  entryFor(publicKeyBase64: string): KeyEntry | undefined {
    const identity = keyIdentity(publicKeyBase64);
    const entry = identity === undefined ? undefined : this.#known.get(identity);
    return entry === undefined ? undefined : copyEntry(entry);
  }

  /** A keyring of the entries that have at least one of `roles`. */
  withRoles(roles: readonly SignatureRole[]): Keyring {
    return new Keyring({
      version: KEY_FILE_VERSION,
      key: this.#entries.filter((e) => e.roles.some((r) => roles.includes(r))),
    });
  }

  /** A keyring with this one's entries followed by those of `other` whose key is not already present. */
  merge(other: Keyring): Keyring {
    const merged = new Keyring(this.toDocument());
    const rawKeys = new Set(this.#entries.map((e) => e.key));
    for (const entry of other.#entries) {
      const identity = keyIdentity(entry.key);
      if (identity === undefined ? rawKeys.has(entry.key) : merged.#known.has(identity)) continue;
      merged.#push(entry);
      rawKeys.add(entry.key);
    }
    return merged;
  }

  /** The keyring as a reference-format document (`version = "1.0"`). */
  toDocument(): KeyRing {
    return { version: KEY_FILE_VERSION, key: this.entries() };
  }

  #push(entry: KeyEntry): void {
    const copy = copyEntry(entry);
    this.#entries.push(copy);
    const identity = keyIdentity(entry.key);
    if (identity !== undefined && !this.#known.has(identity)) this.#known.set(identity, copy);
  }
}
