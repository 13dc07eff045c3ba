/**
 * Choosing the secret key to sign with (`sign-invoice`, `push --sign`): the secret-key file
 * from `--secrets-file` / BINDLE_SECRET_FILE or the default, the role (default creator), and
 * the reference's label selection (`--label` exact, `--label-matching` substring).
 */
import type { SecretKeyEntry, SignatureRole } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { SecretKeyStore, type LabelMatch } from '../../core/signing/secret-key-store.js';
import type { CliContext } from './cli-context.js';
import { usageFailure } from './cli-error.js';
import { parseRolesArg } from './command-kit.js';
import { fileExists } from './local-cache.js';
import { resolveSecretsFile } from './settings.js';

/** The key-selection options shared by the signing commands. */
export interface SigningKeyOptions {
  secretsFile?: string;
  role?: string;
  label?: string;
  labelMatching?: string;
}

/** The chosen key, the role to sign in, and the file it came from. */
export interface ChosenKey {
  readonly key: SecretKeyEntry;
  readonly role: SignatureRole;
  readonly file: string;
}

/**
 * The signing time: SOURCE_DATE_EPOCH (unix seconds, the reproducible-builds convention) when
 * set, so that signing the same release twice yields the same invoice; else undefined (now).
 */
export function signingTime(env: Readonly<Record<string, string | undefined>>): number | undefined {
  const text = env.SOURCE_DATE_EPOCH;
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw usageFailure('invalid SOURCE_DATE_EPOCH', `${JSON.stringify(text)} is not a whole number of unix seconds`);
  }
  return Number(text);
}

/** The role asked for (exactly one; default creator). */
export function signingRole(text: string | undefined): SignatureRole {
  if (text === undefined) return 'creator';
  const roles = parseRolesArg(text, '--role');
  const [role] = roles;
  if (role === undefined || roles.length !== 1) throw usageFailure('invalid --role', 'give exactly one role: creator, approver, proxy or host');
  return role;
}

/**
 * Loads the secret-key file and returns its first key with the role and a matching label.
 * Throws `no_suitable_key` naming `bindle keys create` when there is no file, `invalid_key_file`
 * for an unreadable one, and `no_suitable_key` when no key
 * fits.
 */
export async function chooseSigningKey(ctx: CliContext, opts: SigningKeyOptions): Promise<ChosenKey> {
  const role = signingRole(opts.role);
  const file = await resolveSecretsFile(opts.secretsFile, ctx.settings, ctx.io);
  if (!(await fileExists(file))) {
    throw new BindleError('no_suitable_key', `no secret-key file at ${file}: create a key with 'bindle keys create "Your Name <you@example.com>"' (or name the file with --secrets-file)`);
  }
  const store = await SecretKeyStore.load(file);
  const match: LabelMatch = {};
  if (opts.label !== undefined) match.exact = opts.label;
  if (opts.labelMatching !== undefined) match.partial = opts.labelMatching;
  const key = store.firstMatching(role, match);
  if (key === undefined) {
    const which = [
      `role ${role}`,
      ...(opts.label !== undefined ? [`label ${JSON.stringify(opts.label)}`] : []),
      ...(opts.labelMatching !== undefined ? [`a label containing ${JSON.stringify(opts.labelMatching)}`] : []),
    ].join(' and ');
    throw new BindleError('no_suitable_key', `no key with ${which} in ${file} (create one with 'bindle keys create --roles ${role}')`);
  }
  return { key, role, file };
}
