/**
 * Names on the OCI side: the distribution-spec repository-name grammar (a bindle whose name does
 * not match it is not reachable over OCI), tags <-> versions (`+` <-> `_`, Helm's reversible
 * convention: SemVer never contains `_`), and `sha256:` digests.
 */
import { createHash } from 'node:crypto';
import { MAX_NAME_BYTES, isStrictSemver } from '../ids/bindle-id.js';

/** distribution-spec v1.1 `<name>`: path components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. */
const OCI_NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** distribution-spec v1.1 `<reference>` as a tag. */
const OCI_TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** The only digest algorithm this mapping stores and accepts. */
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
/** image-spec digest grammar: `algorithm:encoded`, any algorithm. */
const ANY_DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * True when the bindle name is a valid OCI repository name (so reachable under /v2/): the
 * grammar, within a bindle name's length (a longer one could never be a bindle, so nothing under
 * /v2/ is kept for it: no upload session, no blob link).
 */
export function isOciName(name: string): boolean {
  return name.length <= MAX_NAME_BYTES && OCI_NAME.test(name);
}

/** True when `reference` is a tag (not a digest) by the distribution-spec grammar. */
export function isOciTag(reference: string): boolean {
  return OCI_TAG.test(reference);
}

/** The tag of a bindle version (`+` -> `_`), or undefined when it cannot be one (over 128 characters). */
export function versionToTag(version: string): string | undefined {
  const tag = version.replaceAll('+', '_');
  return isOciTag(tag) ? tag : undefined;
}

/** The bindle version a tag names (`_` -> `+`), or undefined when the tag is not a SemVer 2 version. */
export function tagToVersion(tag: string): string | undefined {
  if (!isOciTag(tag)) return undefined;
  const version = tag.replaceAll('_', '+');
  return isStrictSemver(version) ? version : undefined;
}

/** True when `value` looks like a digest of any algorithm (`algorithm:encoded`). */
export function isDigestLike(value: string): boolean {
  return ANY_DIGEST.test(value);
}

/** True when `value` is a `sha256:` digest with 64 lowercase hex characters. */
export function isSha256Digest(value: string): boolean {
  return SHA256_DIGEST.test(value);
}

/** `sha256:<hex>` of the bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The `sha256:` digest of a parcel from its label's hex. */
export function parcelDigest(sha256Hex: string): string {
  return `sha256:${sha256Hex}`;
}

/** The hex of a `sha256:` digest (what the parcel store is keyed by), or undefined for any other digest. */
export function sha256Hex(digest: string): string | undefined {
  return isSha256Digest(digest) ? digest.slice('sha256:'.length) : undefined;
}
