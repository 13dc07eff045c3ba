/**
 * Reading what a `/v2/` request names. Repository names contain `/`, so the path is parsed from
 * the right: `<name>/manifests/<reference>`, `<name>/blobs/<digest>`, `<name>/tags/list`,
 * `<name>/referrers/<digest>`, `<name>/blobs/uploads/` and `<name>/blobs/uploads/<session>`.
 */
import { BindleError } from '../../core/errors/bindle-error.js';
import { isOciName } from '../../core/oci/index.js';

/** Which kind of endpoint a path is: decides the OCI error codes (oci-errors.ts). */
export type OciEndpoint = 'base' | 'catalog' | 'manifests' | 'blobs' | 'tags' | 'referrers' | 'uploads';

export interface OciPath {
  endpoint: Exclude<OciEndpoint, 'base' | 'catalog'>;
  name: string;
  /** The reference, digest or upload session; '' for `tags/list` and a new upload. */
  reference: string;
}

/** Parses the path after `/v2/` (already percent-decoded by the router); not_found when it is no endpoint. */
export function parseOciPath(path: string): OciPath {
  const parts = path.split('/');
  const at = (fromEnd: number): string | undefined => parts[parts.length - fromEnd];
  const split = (endpoint: OciPath['endpoint'], suffixParts: number, reference: string): OciPath => ({
    endpoint,
    name: parts.slice(0, parts.length - suffixParts).join('/'),
    reference,
  });
  let found: OciPath | undefined;
  if (at(3) === 'blobs' && at(2) === 'uploads') found = split('uploads', 3, at(1) ?? '');
  else if (at(2) === 'tags' && at(1) === 'list') found = split('tags', 2, '');
  else if (at(2) === 'manifests') found = split('manifests', 2, at(1) ?? '');
  else if (at(2) === 'blobs') found = split('blobs', 2, at(1) ?? '');
  else if (at(2) === 'referrers') found = split('referrers', 2, at(1) ?? '');
  if (found === undefined || found.name === '') throw new BindleError('not_found', `no OCI endpoint at /v2/${path}`);
  return found;
}

/** not_found (NAME_UNKNOWN) unless `name` is a repository name by the OCI grammar. */
export function assertOciName(name: string): void {
  if (!isOciName(name)) {
    throw new BindleError(
      'not_found',
      `repository ${JSON.stringify(name)} does not exist: bindles whose names are outside the OCI name grammar (lowercase [a-z0-9] components joined by ".", "_", "__" or "-") are not reachable over OCI`,
    );
  }
}
