/**
 * Tombstone records: what a hard delete leaves in the invoice index in place of an invoice, a
 * JSON document signed by the host key, so that anyone holding the host's public keys can check
 * who deleted which invoice (by its sha256) when, and why. The index refuses a re-create of
 * the id while the tombstone exists (InvoiceIndex.insert).
 */
import { createHash } from 'node:crypto';
import { BindleError } from '../../core/errors/bindle-error.js';
import { canonicalId, type BindleId } from '../../core/ids/bindle-id.js';
import { verifyStrict } from '../../core/signing/ed25519-point.js';
import { decodePublicKey, decodeSignature } from '../../core/signing/keys.js';
import type { Signer } from '../../core/signing/signer.js';
import type { StoredInvoice, Tombstone } from '../storage/invoice-index.js';

/** The signed document a tombstone's `record` holds. */
export interface TombstoneRecord {
  name: string;
  version: string;
  /** sha256 (hex) of the deleted invoice's stored TOML. */
  invoiceSha256: string;
  /** The principal id that deleted it ('' when the server runs without authentication). */
  deletedBy: string;
  /** Unix seconds. */
  deletedAt: number;
  reason: string;
  /** The signing host key's label and base64 public key, and the base64 Ed25519 signature. */
  by: string;
  key: string;
  signature: string;
}

/** The exact text signed: every field but the signature, one per line, in a fixed order. */
function cleartext(r: Omit<TombstoneRecord, 'signature'>): string {
  return ['bindle-tombstone-v1', r.name, r.version, r.invoiceSha256, r.deletedBy, String(r.deletedAt), r.reason, r.by, r.key].join('\n');
}

/** Signs a tombstone for the deletion of `stored` by `deletedBy`, at `at` (Unix seconds). */
export async function signTombstone(
  stored: StoredInvoice,
  signer: Signer,
  deletedBy: string,
  reason: string,
  at: number,
): Promise<Tombstone> {
  const unsigned = {
    name: stored.name,
    version: stored.version,
    invoiceSha256: createHash('sha256').update(stored.toml).digest('hex'),
    deletedBy,
    deletedAt: at,
    reason,
    by: signer.label,
    key: signer.publicKey,
  };
  const record: TombstoneRecord = { ...unsigned, signature: await signer.sign(cleartext(unsigned)) };
  return {
    name: stored.name,
    version: stored.version,
    canonicalId: canonicalId(stored),
    deletedAt: at * 1000,
    record: JSON.stringify(record),
  };
}

/**
 * The record of a tombstone, checked: it must name `id` and its signature must verify with its
 * key, which must be one of `trustedKeys` (the host's public keys). unverified otherwise.
 */
export function verifyTombstone(tombstone: Tombstone, id: BindleId, trustedKeys: readonly string[]): TombstoneRecord {
  const record = JSON.parse(tombstone.record) as TombstoneRecord;
  if (record.name !== id.name || record.version !== id.version) {
    throw new BindleError('unverified', `the tombstone of ${id.name}/${id.version} names ${record.name}/${record.version}`);
  }
  if (!trustedKeys.includes(record.key)) {
    throw new BindleError('unverified', `the tombstone of ${id.name}/${id.version} is signed by a key that is not the host's`);
  }
  const { signature, ...unsigned } = record;
  const valid = verifyStrict(new TextEncoder().encode(cleartext(unsigned)), decodeSignature(signature), decodePublicKey(record.key));
  if (!valid) throw new BindleError('unverified', `the tombstone signature of ${id.name}/${id.version} does not verify`);
  return record;
}
