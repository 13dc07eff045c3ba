/**
 * Key material: generating secret keys, reading a secret key's Ed25519 keypair, signing with it,
 * deriving the public keyring entry (with its label signature), and decoding public keys and
 * signatures from their base64 text with strict checks. A keypair is base64 of 64 bytes, the
 * 32-byte seed then the 32-byte public key (ed25519-dalek's `to_keypair_bytes`, which is also
 * tweetnacl's secret-key layout). Keys are generated, re-derived and used to sign with Node's
 * built-in Ed25519 (OpenSSL): ~30x faster than pure JS, and no JIT compiler work at the first
 * start (a pure-JS key generation got the scalar multiplication optimized, which alone kept
 * several MiB of compiler code and memory resident). RFC 8032 signing is deterministic, so the
 * bytes are the same as tweetnacl's and ed25519-dalek's (test/unit/signing-keys.test.ts checks
 * both ways).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as nodeSign, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { KeyEntry, SecretKeyEntry, SignatureRole } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';
import { decodeBase64Strict, encodeBase64 } from './base64.js';
import { isCanonicalSignatureScalar, isSmallOrderEncoding, isValidEd25519PublicKey, verifyStrict } from './ed25519-point.js';

export const PUBLIC_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
export const KEYPAIR_LENGTH = 64;
const SEED_LENGTH = 32;

/** DER prefix of an Ed25519 PKCS#8 PrivateKeyInfo (RFC 8410); the 32-byte seed follows it. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 keypair in tweetnacl's form: `secretKey` is the 64-byte seed + public key. */
export interface Ed25519KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

const utf8 = new TextEncoder();

/** Node's private KeyObject for a 32-byte Ed25519 seed. */
function privateKeyOfSeed(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key belonging to a private KeyObject. */
function rawPublicKey(privateKey: KeyObject): Uint8Array {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('Ed25519 public key export has no "x"');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

/** The raw 32-byte seed of a private KeyObject. */
function rawSeed(privateKey: KeyObject): Uint8Array {
  const jwk = privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new Error('Ed25519 private key export has no "d"');
  return new Uint8Array(Buffer.from(jwk.d, 'base64url'));
}

/** A checked keypair and the private KeyObject to sign with. */
function signingKey(entry: SecretKeyEntry): { pair: Ed25519KeyPair; privateKey: KeyObject } {
  const context = `secret key ${JSON.stringify(entry.label)}`;
  const bytes = decodeBase64Strict(entry.keypair, KEYPAIR_LENGTH, 'keypair', context);
  const privateKey = privateKeyOfSeed(bytes.subarray(0, SEED_LENGTH));
  const publicKey = rawPublicKey(privateKey);
  if (!timingSafeEqual(publicKey, bytes.subarray(SEED_LENGTH, KEYPAIR_LENGTH))) {
    throw new BindleError('corrupt_key', `${context}: the public half of the keypair does not match its seed`);
  }
  return { pair: { publicKey, secretKey: bytes }, privateKey };
}

function prefixed(context: string | undefined, message: string): string {
  return context === undefined ? message : `${context}: ${message}`;
}

/**
 * Decodes a base64 public key and checks that it is a usable Ed25519 point. Throws `corrupt_key`
 * (bad base64, wrong length, not a point, or a small-order point), prefixed with `context`.
 */
export function decodePublicKey(text: string, context?: string): Uint8Array {
  const bytes = decodeBase64Strict(text, PUBLIC_KEY_LENGTH, 'key', context);
  if (!isValidEd25519PublicKey(bytes)) {
    const problem = isSmallOrderEncoding(bytes)
      ? 'public key is a small-order Ed25519 point, which cannot be trusted'
      : 'public key is not a valid Ed25519 point';
    throw new BindleError('corrupt_key', prefixed(context, problem));
  }
  return bytes;
}

/**
 * Decodes a base64 signature: 64 bytes whose scalar S is canonical. Throws `corrupt_signature`,
 * prefixed with `context`.
 */
export function decodeSignature(text: string, context?: string): Uint8Array {
  const bytes = decodeBase64Strict(text, SIGNATURE_LENGTH, 'signature', context);
  if (!isCanonicalSignatureScalar(bytes)) {
    throw new BindleError('corrupt_signature', prefixed(context, 'signature scalar is not canonical (S is not below the group order)'));
  }
  return bytes;
}

/** A fresh random signing key with the given label and roles. */
export function createSecretKey(label: string, roles: SignatureRole[]): SecretKeyEntry {
  const { privateKey } = generateKeyPairSync('ed25519');
  const keypair = Buffer.concat([rawSeed(privateKey), rawPublicKey(privateKey)]);
  return { label, keypair: encodeBase64(keypair), roles: [...roles] };
}

/**
 * The Ed25519 keypair of a secret key entry. Throws `corrupt_key` when the keypair is not
 * canonical base64 of 64 bytes or its public half does not belong to its seed. Messages never
 * include key material.
 */
export function secretKeyPair(entry: SecretKeyEntry): Ed25519KeyPair {
  return signingKey(entry).pair;
}

/** The base64 public key of a secret key entry. */
export function publicKeyOf(entry: SecretKeyEntry): string {
  return encodeBase64(secretKeyPair(entry).publicKey);
}

/** Signs the UTF-8 bytes of `text` with a secret key; returns the base64 signature. */
export function signText(entry: SecretKeyEntry, text: string): string {
  return encodeBase64(nodeSign(null, utf8.encode(text), signingKey(entry).privateKey));
}

/**
 * The keyring entry for a secret key: same label and roles, its public key, and
 * `labelSignature` = the key's signature over the label's UTF-8 bytes.
 */
export function publicKeyEntry(secret: SecretKeyEntry): KeyEntry {
  return {
    label: secret.label,
    roles: [...secret.roles],
    key: publicKeyOf(secret),
    labelSignature: signText(secret, secret.label),
  };
}

/**
 * Checks a keyring entry's label signature. Returns `'absent'` when the entry has none (the
 * field is optional) and `'valid'` when it verifies against the entry's key. Throws
 * `corrupt_key` when the key is unusable, `corrupt_signature` when the signature is malformed,
 * and `unverified` when it is well-formed but does not match the label.
 */
export function verifyLabelSignature(entry: KeyEntry): 'absent' | 'valid' {
  const context = `keyring entry ${JSON.stringify(entry.label)}`;
  const key = decodePublicKey(entry.key, context);
  if (entry.labelSignature === undefined) return 'absent';
  const signature = decodeSignature(entry.labelSignature, `${context} labelSignature`);
  if (!verifyStrict(utf8.encode(entry.label), signature, key)) {
    throw new BindleError('unverified', `${context}: labelSignature does not verify against the label and key`);
  }
  return 'valid';
}
