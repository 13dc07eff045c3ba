/**
 * Building signed test bindles: parcels from bytes, invoices signed with the test creator key
 * (scaffolds/keys/secret_keys.toml of a vector set, ours by default), and the scaffolds themselves.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Invoice, SecretKeyEntry } from '../../schema/index.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import { parseSecretKeyFile, parseKeyRing } from '../../core/codec/key-file-codec.js';
import { Keyring } from '../../core/signing/keyring.js';
import { signInvoice } from '../../core/signing/sign.js';
import { OWN_SET, type VectorSet } from './paths.js';

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The creator key of a vector set (ours: "Bindle-TS Test Creator <creator@bindle-ts.test>"). */
export function creatorKey(set: VectorSet = OWN_SET): SecretKeyEntry {
  const file = parseSecretKeyFile(readFileSync(set.path('scaffolds', 'keys', 'secret_keys.toml'), 'utf8'));
  const key = file.key?.[0];
  if (key === undefined) throw new Error(`${set.name} secret key file has no key`);
  return key;
}

/** The keyring of a vector set (trusts its creator key). */
export function creatorKeyring(set: VectorSet = OWN_SET): Keyring {
  return new Keyring(parseKeyRing(readFileSync(set.path('scaffolds', 'keys', 'keyring.toml'), 'utf8')));
}

export interface TestParcel {
  name: string;
  data: Buffer;
  mediaType?: string;
}

/** An invoice listing `parcels`, signed as creator with `key` (default: our test creator key). */
export function signedInvoice(
  name: string,
  version: string,
  parcels: readonly TestParcel[],
  opts: { key?: SecretKeyEntry; description?: string; authors?: string[]; extra?: Partial<Invoice> } = {},
): Invoice {
  const invoice: Invoice = {
    bindleVersion: '1.0.0',
    bindle: {
      name,
      version,
      ...(opts.description !== undefined ? { description: opts.description } : {}),
      ...(opts.authors !== undefined ? { authors: opts.authors } : {}),
    },
    ...(parcels.length > 0
      ? {
          parcel: parcels.map((p) => ({
            label: { sha256: sha256(p.data), mediaType: p.mediaType ?? 'text/plain', name: p.name, size: p.data.length },
          })),
        }
      : {}),
    ...opts.extra,
  };
  return signInvoice(invoice, 'creator', opts.key ?? creatorKey());
}

export interface Scaffold {
  name: string;
  invoiceText: string;
  invoice: Invoice;
  /** Parcel files by file stem (e.g. "parcel"), with their sha256. */
  parcels: Map<string, { sha256: string; data: Buffer }>;
}

/** Loads a scaffold (valid_v1, valid_v2, lotsa_parcels, incomplete, invalid) of a vector set. */
export function loadScaffold(name: string, set: VectorSet = OWN_SET): Scaffold {
  const dir = set.path('scaffolds', name);
  const invoiceText = readFileSync(join(dir, 'invoice.toml'), 'utf8');
  const parcels = new Map<string, { sha256: string; data: Buffer }>();
  let files: string[] = [];
  try {
    files = readdirSync(join(dir, 'parcels'));
  } catch {
    files = [];
  }
  for (const f of files) {
    const data = readFileSync(join(dir, 'parcels', f));
    parcels.set(f.replace(/\.dat$/, ''), { sha256: sha256(data), data });
  }
  return { name, invoiceText, invoice: parseInvoice(invoiceText), parcels };
}
