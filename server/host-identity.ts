/**
 * The server's identity: the host signing key(s) in a reference-format secret-key file. Every
 * replica of a shared deployment is given the same file (a mounted secret), so they all sign
 * with the same key and serve the same `/bindle-keys`. The file may hold several host keys for
 * rotation: the first one signs, all are published so older signatures still verify.
 */
import { existsSync } from 'node:fs';
import { BindleError } from '../core/errors/bindle-error.js';
import { Keyring } from '../core/signing/keyring.js';
import { createSecretKey, publicKeyEntry } from '../core/signing/keys.js';
import { SecretKeyStore } from '../core/signing/secret-key-store.js';
import { LocalSigner, type Signer } from '../core/signing/signer.js';

/** Who the server is: the signer it signs with and every public key it publishes. */
export interface HostIdentity {
  readonly signer: Signer;
  /** Public keys of every key in the file (served at /bindle-keys), the signing key first. */
  readonly keyring: Keyring;
  /** True when the file was created by this call. */
  readonly created: boolean;
}

/**
 * Loads the host key file at `path`. When it does not exist: with `createIfMissing` (the
 * single-node default) a new host key labelled `label` is created in it; otherwise that is an
 * `invalid_config` error saying how to create one. A file without a host key is `invalid_config`.
 */
export async function loadHostIdentity(path: string, opts: { createIfMissing: boolean; label: string }): Promise<HostIdentity> {
  let store: SecretKeyStore;
  let created = false;
  if (opts.createIfMissing) {
    ({ store, created } = await SecretKeyStore.loadOrCreate(path, opts.label, ['host']));
  } else {
    if (!existsSync(path)) {
      throw new BindleError(
        'invalid_config',
        `host signing key file ${path} does not exist. With a shared index every replica must sign with the same ` +
          `host key: create it once with "bindle-server keys create-host --out ${path}" and give the same file to ` +
          'every replica (--signing-keys / BINDLE_SIGNING_KEYS, e.g. a mounted secret)',
      );
    }
    store = await SecretKeyStore.load(path);
  }
  const hostKey = store.firstMatching('host');
  if (hostKey === undefined) throw new BindleError('invalid_config', `no key with the host role in ${path}`);
  const keyring = new Keyring();
  keyring.add(publicKeyEntry(hostKey));
  for (const entry of store.entries()) keyring.add(publicKeyEntry(entry));
  return { signer: new LocalSigner(hostKey), keyring, created };
}

/** What `createHostKeyFile` wrote. */
export interface CreatedHostKey {
  /** The new key's base64 public key. */
  readonly publicKey: string;
  /** Keys now in the file (more than 1 after a rotation). */
  readonly keys: number;
}

/**
 * Writes a new host key to `path` (mode 0600). Without `rotate`, an existing file is an
 * `invalid_config` error (a host key is never replaced by accident). With `rotate`, the new key
 * is put first (so it signs from then on) and every key already in the file is kept after it
 * (so it is still published and signatures made with it still verify).
 */
export async function createHostKeyFile(path: string, opts: { label: string; rotate: boolean }): Promise<CreatedHostKey> {
  const exists = existsSync(path);
  if (exists && !opts.rotate) {
    throw new BindleError('invalid_config', `${path} already exists; pass --rotate to add a new host key in front of the existing ones`);
  }
  const fresh = createSecretKey(opts.label, ['host']);
  const store = new SecretKeyStore();
  store.add(fresh);
  if (exists) for (const entry of (await SecretKeyStore.load(path)).entries()) store.add(entry);
  await store.save(path);
  return { publicKey: new LocalSigner(fresh).publicKey, keys: store.size };
}
