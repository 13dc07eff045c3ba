/**
 * Signature roles (creator, approver, proxy, host) as text: parsing with the reference's
 * leniency (any case, surrounding space, one-letter abbreviations) and display names.
 */
import type { SignatureRole } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';

export type { SignatureRole };

/** Every role, in the order the schema lists them. */
export const ALL_ROLES: readonly SignatureRole[] = ['creator', 'approver', 'proxy', 'host'];

const ROLE_ALIASES: ReadonlyMap<string, SignatureRole> = new Map([
  ['c', 'creator'],
  ['creator', 'creator'],
  ['a', 'approver'],
  ['approver', 'approver'],
  ['p', 'proxy'],
  ['proxy', 'proxy'],
  ['h', 'host'],
  ['host', 'host'],
]);

/** Parses a role name (case-insensitive, trimmed; `c`/`a`/`p`/`h` too). Throws `bad_request`. */
export function parseRole(text: string): SignatureRole {
  const role = ROLE_ALIASES.get(text.trim().toLowerCase());
  if (role === undefined) {
    throw new BindleError(
      'bad_request',
      `invalid signature role ${JSON.stringify(text)}: expected one of creator, approver, proxy, host (or c, a, p, h)`,
    );
  }
  return role;
}

/** The role with a capital initial, as the reference prints it in strategy names ("Creator"). */
export function roleTitle(role: SignatureRole): string {
  return role.charAt(0).toUpperCase() + role.slice(1);
}
