/**
 * The exact text an invoice signature signs. Three forms:
 * - the reference form (what every existing signature uses and what we sign): `by`, name,
 *   version, role, `~`, then each parcel's sha256 in invoice order;
 * - the written specification's form, which adds `at` after the role (accepted when verifying);
 * - the yank form: `by`, name, version, `host`, `at`, `yanked`, `~`, reason.
 * Lines are joined with `\n`, with no trailing newline.
 */
import type { Invoice, SignatureRole } from '../../schema/index.js';

function parcelDigests(inv: Invoice): string[] {
  return (inv.parcel ?? []).map((p) => p.label.sha256);
}

/** The reference implementation's signature cleartext (no `at` line). */
export function invoiceCleartext(inv: Invoice, by: string, role: SignatureRole): string {
  return [by, inv.bindle.name, inv.bindle.version, role, '~', ...parcelDigests(inv)].join('\n');
}

/** The written specification's signature cleartext, with `at` (unix seconds) after the role. */
export function specCleartext(inv: Invoice, by: string, role: SignatureRole, at: number): string {
  return [by, inv.bindle.name, inv.bindle.version, role, String(at), '~', ...parcelDigests(inv)].join('\n');
}

/** The cleartext of a host's yank signature; `reason` may be empty. */
export function yankCleartext(inv: Invoice, by: string, at: number, reason: string): string {
  return [by, inv.bindle.name, inv.bindle.version, 'host', String(at), 'yanked', '~', reason].join('\n');
}
