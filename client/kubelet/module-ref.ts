/**
 * Module references: what a container's `image` names. Two forms starting `bindle:`:
 * - `bindle:<name>/<version>`, the specification's URI form: exactly that bindle;
 * - `bindle:<name>@<range>`, an npm-style SemVer range (e.g. `bindle:example.com/hello@^1.0.0`)
 *   that the module store resolves through the server's query to the highest matching version
 *   that is not yanked;
 * and an image in any OCI registry, as Krustlet ran them: `<registry>/<repository>[:<tag>]` or
 * `…@sha256:<hex>` (e.g. `ghcr.io/example/hello:1.0.0`, `127.0.0.1:5000/example.com/app:1.0.0`;
 * tag `latest` when none is given). The registry must be named (a host with a `.` or a port,
 * or `localhost`): there is no default registry.
 */
import semver from 'semver';
import { BindleError } from '../../core/errors/bindle-error.js';
import { assertValidName, parseId, type BindleId } from '../../core/ids/bindle-id.js';
import { isOciName, isOciTag, isSha256Digest } from '../../core/oci/index.js';

/** The scheme every module reference starts with. */
export const MODULE_REF_SCHEME = 'bindle:';

/** A parsed module reference. `text` is the reference as written. */
export type ModuleRef =
  | { readonly kind: 'exact'; readonly text: string; readonly id: BindleId }
  | { readonly kind: 'range'; readonly text: string; readonly name: string; readonly range: string }
  | OciImageRef;

/** An image in an OCI registry; `reference` is the tag or the `sha256:` digest. */
export interface OciImageRef {
  readonly kind: 'oci';
  readonly text: string;
  readonly registry: string;
  readonly repository: string;
  readonly reference: string;
}

const FORMS = 'expected bindle:<name>/<version>, bindle:<name>@<semver range> or <registry>/<repository>[:<tag>|@sha256:<hex>]';

/** Parses `<registry>/<repository>[:<tag>][@sha256:<hex>]`; `fail` names what is wrong. */
function parseOciImageRef(text: string, fail: (why: string) => BindleError): OciImageRef {
  const slash = text.indexOf('/');
  const registry = slash < 0 ? '' : text.slice(0, slash);
  if (slash < 0 || !(registry.includes('.') || registry.includes(':') || registry === 'localhost') || /[^A-Za-z0-9.:[\]-]/.test(registry)) {
    throw fail(`name the registry (e.g. ghcr.io/${text}): images run from bindle: references or from an OCI registry given as <host>[:<port>]/…; ${FORMS}`);
  }
  let rest = text.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isSha256Digest(digest)) throw fail(`"${digest}" is not a sha256:<64 hex> digest`);
  }
  const colon = rest.lastIndexOf(':');
  const repository = colon >= 0 ? rest.slice(0, colon) : rest;
  const tag = colon >= 0 ? rest.slice(colon + 1) : undefined;
  if (!isOciName(repository)) throw fail(`"${repository}" is not an OCI repository name (lowercase path components of letters and digits with ".", "_", "__" or "-" between them)`);
  if (tag !== undefined && !isOciTag(tag)) throw fail(`"${tag}" is not an OCI tag`);
  return { kind: 'oci', text, registry, repository, reference: digest ?? tag ?? 'latest' };
}

/**
 * Parses a module reference. Throws `invalid_id` for anything that is not one of the two forms
 * (with the reason: missing scheme, bad name, bad version, bad range).
 */
export function parseModuleRef(text: string): ModuleRef {
  const fail = (why: string): BindleError =>
    new BindleError('invalid_id', `invalid module reference ${JSON.stringify(text)}: ${why}`);
  if (!text.startsWith(MODULE_REF_SCHEME)) return parseOciImageRef(text, fail);
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

/** True for a range reference or an image by tag: Kubernetes' moving tags, so their default pull policy is Always. */
export function isMovingRef(ref: ModuleRef): boolean {
  return ref.kind === 'range' || (ref.kind === 'oci' && !isSha256Digest(ref.reference));
}
