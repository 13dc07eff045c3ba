/**
 * Where tests find things: the repository root, our own fixtures, and the reference
 * implementation's test vectors in ../shared/reference-fixtures (or $BINDLE_REFERENCE_FIXTURES).
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(REPO_ROOT, 'fixtures');

const REFERENCE_FIXTURES_GIVEN = resolve(
  process.env.BINDLE_REFERENCE_FIXTURES ?? join(REPO_ROOT, '..', 'shared', 'reference-fixtures'),
);

if (!existsSync(REFERENCE_FIXTURES_GIVEN)) {
  throw new Error(
    `reference fixtures not found at ${REFERENCE_FIXTURES_GIVEN}: clone beside shared/ or set BINDLE_REFERENCE_FIXTURES`,
  );
}

/** The fixtures' real path (links resolved), so paths compare equal to what code resolves. */
export const REFERENCE_FIXTURES = realpathSync(REFERENCE_FIXTURES_GIVEN);

/** Path of a file under the reference fixtures, e.g. ref('scaffolds/keys/keyring.toml'). */
export function ref(...parts: string[]): string {
  return join(REFERENCE_FIXTURES, ...parts);
}

/** Names of the reference scaffolds that carry a signed invoice. */
export const SIGNED_SCAFFOLDS = ['valid_v1', 'valid_v2', 'lotsa_parcels', 'incomplete', 'invalid'] as const;
