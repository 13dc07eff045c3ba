/**
 * Signed bindles for the benchmarks: a fresh creator key per run, the keyring file a server
 * needs to trust it, and signed invoices created on a server through the API.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Invoice, Label, SecretKeyEntry } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { renderKeyRing, renderSecretKeyFile } from '../../core/codec/key-file-codec.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import { signInvoice } from '../../core/signing/sign.js';
import { expectStatus } from './http.js';

/** The keys of a benchmark run: the creator that signs its invoices, and the servers' host key. */
export interface BenchKeys {
  creator: SecretKeyEntry;
  host: SecretKeyEntry;
  /** The servers' keyring (TOML): trusts the creator. */
  serverKeyringToml: string;
  /** A client's keyring (TOML): trusts the creator and the host. */
  clientKeyringToml: string;
}

export function createBenchKeys(): BenchKeys {
  const creator = createSecretKey('Bindle benchmark <bench@example.com>', ['creator']);
  const host = createSecretKey('Bindle benchmark host <host@example.com>', ['host']);
  return {
    creator,
    host,
    serverKeyringToml: renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator)] }),
    clientKeyringToml: renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator), publicKeyEntry(host)] }),
  };
}

/**
 * Writes the server's keyring and host signing key into a data directory, where the server
 * finds them by default (`keyring.toml`, `signing-keys.toml`).
 */
export function writeKeyring(directory: string, keys: BenchKeys): void {
  writeFileSync(join(directory, 'keyring.toml'), keys.serverKeyringToml);
  writeFileSync(join(directory, 'signing-keys.toml'), renderSecretKeyFile({ version: '1.0', key: [keys.host] }), { mode: 0o600 });
}

/** An invoice listing `labels`, signed as creator. */
export function signedInvoice(keys: BenchKeys, name: string, version: string, labels: readonly Label[]): Invoice {
  const invoice: Invoice = {
    bindleVersion: '1.0.0',
    bindle: { name, version, description: `benchmark bindle ${name}`, authors: ['Bindle benchmark'] },
    ...(labels.length > 0 ? { parcel: labels.map((label) => ({ label: { ...label } })) } : {}),
  };
  return signInvoice(invoice, 'creator', keys.creator);
}

/** POSTs the invoice to `<api>/_i` as TOML; it must be created (201, or 202 with missing parcels). */
export async function createInvoice(api: string, invoice: Invoice): Promise<void> {
  await expectStatus([201, 202], `${api}/_i`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml' },
    body: renderInvoice(invoice, 'toml'),
  });
}

/** The path of a parcel under `/_i`: `<api>/_i/<name>/<version>@<sha256>`. */
export function parcelUrl(api: string, name: string, version: string, sha256: string): string {
  return `${api}/_i/${name}/${version}@${sha256}`;
}
