/**
 * Keyrings and secret-key files in the reference's TOML format (`version = "1.0"`, `[[key]]`).
 * Parsing validates the schema; rendering keeps the schema's key order.
 */
import type { KeyEntry, KeyRing, SecretKeyEntry, SecretKeyFile } from '../../schema/index.js';
import { parseDocument, renderDocument, type DocumentFormat } from './document-codec.js';

export const KEY_FILE_VERSION = '1.0';

export function parseKeyRing(text: string, format: DocumentFormat = 'toml'): KeyRing {
  return parseDocument('KeyRing', text, format, 'invalid_key_file', 'keyring');
}

export function parseSecretKeyFile(text: string, format: DocumentFormat = 'toml'): SecretKeyFile {
  return parseDocument('SecretKeyFile', text, format, 'invalid_key_file', 'secret key file');
}

function keyEntry(k: KeyEntry): KeyEntry {
  const out: KeyEntry = { label: k.label, roles: [...k.roles], key: k.key };
  if (k.labelSignature !== undefined) out.labelSignature = k.labelSignature;
  return out;
}

function secretKeyEntry(k: SecretKeyEntry): SecretKeyEntry {
  return { label: k.label, keypair: k.keypair, roles: [...k.roles] };
}

export function renderKeyRing(ring: KeyRing, format: DocumentFormat = 'toml'): string {
  return renderDocument({ version: ring.version, key: (ring.key ?? []).map(keyEntry) }, format);
}

export function renderSecretKeyFile(file: SecretKeyFile, format: DocumentFormat = 'toml'): string {
  return renderDocument({ version: file.version, key: (file.key ?? []).map(secretKeyEntry) }, format);
}
