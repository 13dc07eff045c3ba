/**
 * The mapping between a bindle and its OCI manifest (README "OCI"): `buildBindleManifest` gives
 * the one deterministic manifest of an invoice, `signatureReferrers` the deterministic referrer
 * manifest of each of its signatures, and `checkBindleManifest` decides whether a pushed manifest
 * is a bindle whose layers are exactly its invoice's parcels.
 */
import type { Invoice, Label, Signature } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';
import {
  ANNOTATION_AUTHORS,
  ANNOTATION_DESCRIPTION,
  ANNOTATION_SIGNATURE_AT,
  ANNOTATION_SIGNATURE_BY,
  ANNOTATION_SIGNATURE_KEY,
  ANNOTATION_SIGNATURE_ROLE,
  ANNOTATION_SIGNATURE_VALUE,
  ANNOTATION_TITLE,
  ANNOTATION_VERSION,
  BINDLE_ARTIFACT_TYPE,
  BINDLE_CONFIG_MEDIA_TYPE,
  BINDLE_SIGNATURE_ARTIFACT_TYPE,
  EMPTY_DIGEST,
  OCI_MANIFEST_MEDIA_TYPE,
} from './oci-media-types.js';
import { EMPTY_DESCRIPTOR, descriptorOf, manifestInvalid, renderManifest, type OciContent, type OciDescriptor, type OciManifest } from './oci-manifest.js';
import { parcelDigest, sha256Digest } from './oci-names.js';

/** The layer descriptor of one parcel: its label's media type, digest, size, name and annotations. */
export function parcelLayer(label: Label): OciDescriptor {
  return {
    mediaType: label.mediaType,
    digest: parcelDigest(label.sha256),
    size: label.size,
    annotations: { ...label.annotations, [ANNOTATION_TITLE]: label.name },
  };
}

/** The manifest's own annotations: the invoice's, then the bindle's name, version, description, authors. */
function manifestAnnotations(invoice: Invoice): Record<string, string> {
  const { bindle } = invoice;
  return {
    ...invoice.annotations,
    [ANNOTATION_TITLE]: bindle.name,
    [ANNOTATION_VERSION]: bindle.version,
    ...(bindle.description === undefined ? {} : { [ANNOTATION_DESCRIPTION]: bindle.description }),
    ...(bindle.authors === undefined || bindle.authors.length === 0 ? {} : { [ANNOTATION_AUTHORS]: bindle.authors.join(', ') }),
  };
}

/**
 * The OCI manifest of a bindle: `configBytes` are the invoice's exact bytes (its TOML as stored),
 * `invoice` what they parse to. A pure function: the same arguments give the same bytes, so the
 * digest may be computed anywhere and stored once.
 */
export function buildBindleManifest(configBytes: Uint8Array, invoice: Invoice): OciContent {
  const parcels = invoice.parcel ?? [];
  return renderManifest({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: BINDLE_ARTIFACT_TYPE,
    config: { mediaType: BINDLE_CONFIG_MEDIA_TYPE, digest: sha256Digest(configBytes), size: configBytes.length },
    layers: parcels.length === 0 ? [EMPTY_DESCRIPTOR] : parcels.map((p) => parcelLayer(p.label)),
    annotations: manifestAnnotations(invoice),
  });
}

/** The annotations that carry one signature. */
function signatureAnnotations(signature: Signature): Record<string, string> {
  return {
    [ANNOTATION_SIGNATURE_BY]: signature.by,
    [ANNOTATION_SIGNATURE_ROLE]: signature.role,
    [ANNOTATION_SIGNATURE_KEY]: signature.key,
    [ANNOTATION_SIGNATURE_AT]: String(signature.at),
    [ANNOTATION_SIGNATURE_VALUE]: signature.signature,
  };
}

/** A referrer manifest with the descriptor the referrers API lists it under. */
export interface Referrer {
  readonly content: OciContent;
  readonly descriptor: OciDescriptor;
}

/**
 * One referrer manifest per signature of the invoice (in invoice order, the host's included),
 * each with `subject` = the bindle's manifest: artifactType BINDLE_SIGNATURE_ARTIFACT_TYPE, empty
 * config and layer, the signature's fields as annotations. Deterministic like the manifest.
 */
export function signatureReferrers(subject: OciContent, invoice: Invoice): Referrer[] {
  const subjectDescriptor = descriptorOf(subject);
  return (invoice.signature ?? []).map((signature) => {
    const annotations = signatureAnnotations(signature);
    const content = renderManifest({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      artifactType: BINDLE_SIGNATURE_ARTIFACT_TYPE,
      config: EMPTY_DESCRIPTOR,
      layers: [EMPTY_DESCRIPTOR],
      subject: subjectDescriptor,
      annotations,
    });
    return { content, descriptor: descriptorOf(content, { artifactType: BINDLE_SIGNATURE_ARTIFACT_TYPE, annotations }) };
  });
}

/** True when the manifest says it is a bindle (by artifactType or config media type). */
export function isBindleManifest(manifest: OciManifest): boolean {
  return manifest.artifactType === BINDLE_ARTIFACT_TYPE || manifest.config.mediaType === BINDLE_CONFIG_MEDIA_TYPE;
}

/** Throws `unsupported`, saying what this registry accepts, unless the manifest says it is a bindle. */
export function assertBindleManifest(manifest: OciManifest): void {
  if (!isBindleManifest(manifest)) {
    throw new BindleError(
      'unsupported',
      `this registry stores bindles only: a manifest with artifactType ${BINDLE_ARTIFACT_TYPE} whose config (${BINDLE_CONFIG_MEDIA_TYPE}) ` +
        'is a signed invoice and whose layers are its parcels',
    );
  }
}

/**
 * Throws unless `manifest` is a bindle manifest for `invoice`, whose bytes are `configBytes`:
 * artifactType and config media type are Bindle's, the config descriptor names `configBytes`,
 * and the layers are the invoice's parcels in invoice order (same digest, size and media type),
 * or the single empty descriptor when it has none. Other annotations are the pusher's to choose.
 * `unsupported` for a manifest that is not a bindle at all, `manifest_invalid` for one that is
 * but does not match.
 */
export function checkBindleManifest(manifest: OciManifest, configBytes: Uint8Array, invoice: Invoice): void {
  assertBindleManifest(manifest);
  if (manifest.artifactType !== BINDLE_ARTIFACT_TYPE) throw manifestInvalid(`artifactType must be ${BINDLE_ARTIFACT_TYPE}`);
  if (manifest.config.mediaType !== BINDLE_CONFIG_MEDIA_TYPE) throw manifestInvalid(`config.mediaType must be ${BINDLE_CONFIG_MEDIA_TYPE}`);
  if (manifest.config.digest !== sha256Digest(configBytes) || manifest.config.size !== configBytes.length) {
    throw manifestInvalid('the config descriptor does not match the config blob');
  }
  const parcels = invoice.parcel ?? [];
  if (parcels.length === 0) {
    const [only] = manifest.layers;
    if (manifest.layers.length > 1 || (only !== undefined && only.digest !== EMPTY_DIGEST)) {
      throw manifestInvalid('the invoice has no parcels: layers must be the one empty descriptor');
    }
    return;
  }
  if (manifest.layers.length !== parcels.length) {
    throw manifestInvalid(`the invoice has ${parcels.length} parcels but the manifest has ${manifest.layers.length} layers: one layer per parcel, in invoice order`);
  }
  parcels.forEach(({ label }, i) => {
    const layer = manifest.layers[i] as OciDescriptor;
    const want = parcelLayer(label);
    if (layer.digest !== want.digest || layer.size !== want.size || layer.mediaType !== want.mediaType) {
      throw manifestInvalid(
        `layers[${i}] (${layer.mediaType} ${layer.digest}, ${layer.size} bytes) is not parcel ${i} of the invoice ` +
          `(${want.mediaType} ${want.digest}, ${want.size} bytes): one layer per parcel, in invoice order`,
      );
    }
  });
}
