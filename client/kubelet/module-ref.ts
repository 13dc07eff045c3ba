/**
 * Module references: what a container's `image` names. Two forms, both starting `bindle:`:
 * - `bindle:<name>/<version>`, the specification's URI form: exactly that bindle;
 * - `bindle:<name>@<range>`, an npm-style SemVer range (e.g. `bindle:example.com/hello@^1.0.0`)
 *   that the module store resolves through the server's query to the highest matching version
 *   that is not yanked.
 */
import semver from 'semver';
import { BindleError } from '../../core/errors/bindle-error.js';
import { assertValidName, parseId, type BindleId } from '../../core/ids/bindle-id.js';

/** The scheme every module reference starts with. */
export const MODULE_REF_SCHEME = 'bindle:';

/** A parsed module reference. `text` is the reference as written. */
export type ModuleRef =
  | { readonly kind: 'exact'; readonly text: string; readonly id: BindleId }
  | { readonly kind: 'range'; readonly text: string; readonly name: string; readonly range: string };

const FORMS = 'expected bindle:<name>/<version> or bindle:<name>@<semver range>';

/**
 * Parses a module reference. Throws `invalid_id` for anything that is not one of the two forms
 * (with the reason: missing scheme, bad name, bad version, bad range).
 */
export function parseModuleRef(text: string): ModuleRef {
  const fail = (why: string): BindleError =>
    new BindleError('invalid_id', `invalid module reference ${JSON.stringify(text)}: ${why}`);
  if (!text.startsWith(MODULE_REF_SCHEME)) {
    throw fail(`only bindles can run here; ${FORMS}`);
  }
  const body = text.slice(MODULE_REF_SCHEME.length);
  if (body.startsWith('//')) throw fail(`no "//" after "bindle:" (${FORMS})`);
  const at = body.indexOf('@');
  if (at >= 0) {
    const name = body.slice(0, at);
    const range = body.slice(at + 1).trim();
    try {
      assertValidName(name);
    } catch (err) {
      throw fail(err instanceof Error ? err.message : String(err));
    }
    if (range === '') throw fail(`empty version range after "@" (${FORMS})`);
    if (semver.validRange(range) === null) throw fail(`"${range}" is not a valid SemVer range`);
    return { kind: 'range', text, name, range };
  }
  try {
    return { kind: 'exact', text, id: parseId(body) };
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err));
  }
}

/** True for a range reference: Kubernetes would call it a moving tag, so its default pull policy is Always. */
export function isMovingRef(ref: ModuleRef): boolean {
  return ref.kind === 'range';
}
