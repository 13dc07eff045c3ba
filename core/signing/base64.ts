/**
 * Strict base64 for keys and signatures: the standard alphabet with padding, and nothing the
 * canonical encoder would not produce (no whitespace, no URL-safe characters, no missing
 * padding, no stray bits in the last character), decoding to exactly the expected length.
 */
import { BindleError, type ErrorCode } from '../errors/bindle-error.js';

/** What a base64 field holds; decides the error code and the wording of a failure. */
export type Base64Field = 'key' | 'signature' | 'keypair';

const CANONICAL_SHAPE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const FIELD_NAME: Readonly<Record<Base64Field, string>> = {
  key: 'public key',
  signature: 'signature',
  keypair: 'secret keypair',
};

const FIELD_CODE: Readonly<Record<Base64Field, ErrorCode>> = {
  key: 'corrupt_key',
  signature: 'corrupt_signature',
  keypair: 'corrupt_key',
};

/** Standard, padded base64 of `bytes`. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Decodes `text` as canonical standard base64 of exactly `expectedLength` bytes.
 * Throws `corrupt_key` (for a key or keypair) or `corrupt_signature` (for a signature) saying
 * what is wrong; `context` (e.g. `signature by "X" (creator)`) prefixes the message. The message
 * never repeats a keypair's text.
 */
export function decodeBase64Strict(
  text: string,
  expectedLength: number,
  what: Base64Field,
  context?: string,
): Uint8Array {
  const fail = (problem: string): BindleError =>
    new BindleError(FIELD_CODE[what], `${context === undefined ? '' : `${context}: `}${problem}`);
  const name = FIELD_NAME[what];
  if (typeof text !== 'string' || text.length === 0) throw fail(`${name} is empty`);
  if (!CANONICAL_SHAPE.test(text)) {
    let problem: string;
    if (/\s/.test(text)) problem = 'contains whitespace';
    else if (/[-_]/.test(text)) problem = 'uses the URL-safe alphabet; the standard alphabet is required';
    else if (/^[A-Za-z0-9+/]+$/.test(text)) problem = 'is missing its "=" padding';
    else problem = 'has characters or padding outside standard base64';
    throw fail(`${name} is not valid base64: it ${problem}`);
  }
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (encodeBase64(bytes) !== text) {
    throw fail(`${name} is not canonical base64: the unused bits of its last character are not zero`);
  }
  if (bytes.length !== expectedLength) {
    throw fail(`${name} decodes to ${bytes.length} bytes, expected ${expectedLength}`);
  }
  return bytes;
}
