/**
 * Strict Ed25519 verification. The final signature check runs on Node's built-in Ed25519
 * (OpenSSL, RFC 8032, ~90x faster than a pure-JS verify such as tweetnacl's on this hardware),
 * after the checks matching ed25519-dalek's `verify_strict`: a public key must decompress to a
 * curve point (canonical y, a square root for x, no "negative zero") that is not of small order;
 * a signature's S must be canonical (S < L) and its R must not be a small-order point. Field
 * arithmetic is done with BigInt; it runs only on 32-byte inputs.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow it. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keyObjects = new Map<string, KeyObject>();
const KEY_CACHE_LIMIT = 1024;

/** A cached KeyObject for a raw 32-byte public key. */
function publicKeyObject(raw: Uint8Array): KeyObject {
  const cacheKey = Buffer.from(raw).toString('hex');
  let key = keyObjects.get(cacheKey);
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    if (keyObjects.size >= KEY_CACHE_LIMIT) keyObjects.clear();
    keyObjects.set(cacheKey, key);
  }
  return key;
}

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
/** d = -121665 / 121666 mod p */
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
/** A square root of -1 mod p. */
const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n;

interface AffinePoint {
  x: bigint;
  y: bigint;
}

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function pow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  let e = exponent;
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

/** Little-endian bytes as an unsigned integer. */
function littleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i -= 1) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n;
}

/** RFC 8032 §5.1.3 point decoding, rejecting a non-canonical y; undefined when not a point. */
function decompress(bytes: Uint8Array): AffinePoint | undefined {
  if (bytes.length !== 32) return undefined;
  const encoded = littleEndian(bytes);
  const sign = encoded >> 255n;
  const y = encoded & (2n ** 255n - 1n);
  if (y >= P) return undefined;
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  const v3 = (v * v * v) % P;
  const v7 = (v3 * v3 * v) % P;
  let x = (u * v3 * pow(u * v7, (P - 5n) / 8n)) % P;
  const vx2 = (v * x * x) % P;
  if (vx2 === u) {
    // x is a root
  } else if (vx2 === mod(-u)) {
    x = (x * SQRT_M1) % P;
  } else {
    return undefined;
  }
  if (x === 0n && sign === 1n) return undefined;
  if ((x & 1n) !== sign) x = P - x;
  return { x, y };
}

/** True when 8·P is the identity, i.e. the point lies in the torsion subgroup. */
function hasSmallOrder(point: AffinePoint): boolean {
  // Extended coordinates (X:Y:Z), doubling for a = -1 (dbl-2008-hwcd); T is not needed.
  let X = point.x;
  let Y = point.y;
  let Z = 1n;
  for (let i = 0; i < 3; i += 1) {
    const A = (X * X) % P;
    const B = (Y * Y) % P;
    const C = (2n * Z * Z) % P;
    const Dd = mod(-A);
    const E = mod((X + Y) * (X + Y) - A - B);
    const G = mod(Dd + B);
    const F = mod(G - C);
    const H = mod(Dd - B);
    X = (E * F) % P;
    Y = (G * H) % P;
    Z = (F * G) % P;
  }
  return X === 0n && Y === Z;
}

/**
 * True when `bytes` is the canonical encoding of an Ed25519 point that is not of small order
 * (the checks ed25519-dalek's `verify_strict` makes on a public key).
 */
export function isValidEd25519PublicKey(bytes: Uint8Array): boolean {
  const cacheKey = Buffer.from(bytes).toString('hex');
  const known = validKeys.get(cacheKey);
  if (known !== undefined) return known;
  const point = decompress(bytes);
  const valid = point !== undefined && !hasSmallOrder(point);
  if (validKeys.size >= KEY_CACHE_LIMIT) validKeys.clear();
  validKeys.set(cacheKey, valid);
  return valid;
}

/** Results of the (BigInt, ~0.7 ms) public key check: the same keys sign invoice after invoice. */
const validKeys = new Map<string, boolean>();

/** True when `bytes` decodes to a point of small order (including the identity). */
export function isSmallOrderEncoding(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  // Every point of small order has one of these y coordinates, so any other y is ruled out
  // without the (slow, BigInt) decompression; candidates get the full check.
  const y = (littleEndian(bytes) & (2n ** 255n - 1n)) % P;
  if (!SMALL_ORDER_Y.has(y)) return false;
  const point = decompress(bytes);
  return point !== undefined && hasSmallOrder(point);
}

/** y coordinates of the eight torsion points: identity, order 2, order 4 and order 8. */
const ORDER_8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
const SMALL_ORDER_Y = new Set<bigint>([1n, P - 1n, 0n, ORDER_8_Y, P - ORDER_8_Y]);

/** True when the S half (bytes 32..63) of a 64-byte signature is below the group order L. */
export function isCanonicalSignatureScalar(sig: Uint8Array): boolean {
  return sig.length === 64 && littleEndian(sig.subarray(32, 64)) < L;
}

/**
 * Strict Ed25519 verification: the key is a valid non-small-order point, S is canonical, R is
 * not of small order, and the signature verifies over `message`. Never throws.
 */
export function verifyStrict(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  if (!isCanonicalSignatureScalar(signature) || !isValidEd25519PublicKey(publicKey)) return false;
  if (isSmallOrderEncoding(signature.subarray(0, 32))) return false;
  return nodeVerify(null, message, publicKeyObject(publicKey), signature);
}
