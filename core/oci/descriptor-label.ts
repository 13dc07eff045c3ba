/**
 * A blob descriptor as a Label: what the client side's size and sha256 checks (and their
 * messages) take, for a layer, a config or a manifest fetched by digest.
 */
import type { Label } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';
import type { OciDescriptor } from './oci-manifest.js';
import { sha256Hex } from './oci-names.js';

/** The label `descriptor` promises, named `name` in messages; `unsupported` unless its digest is sha256. */
export function descriptorLabel(descriptor: OciDescriptor, name: string): Label {
  const hex = sha256Hex(descriptor.digest);
  if (hex === undefined) throw new BindleError('unsupported', `${name} has the digest ${descriptor.digest}: only sha256 digests are supported`);
  return { sha256: hex, size: descriptor.size, mediaType: descriptor.mediaType, name };
}
