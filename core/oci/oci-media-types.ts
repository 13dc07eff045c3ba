/**
 * The names Bindle uses on the OCI side, chosen once (README "OCI"): the OCI media types this
 * server reads and writes, Bindle's artifact and config types, the annotation keys, and the
 * image-spec empty descriptor. Both the server (`server/oci/`) and the tools import them here.
 */

/** OCI image manifest v1.1 (the only manifest kind a bindle maps to). */
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
/** OCI image index: the referrers API answers with one. */
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
/** Docker's schema 2 manifest list and manifest: recognised only to refuse them clearly. */
export const DOCKER_MANIFEST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** The `artifactType` of a bindle's manifest. */
export const BINDLE_ARTIFACT_TYPE = 'application/vnd.bindle.invoice.v1';
/** The config descriptor's media type: the config blob is the invoice's exact TOML bytes. */
export const BINDLE_CONFIG_MEDIA_TYPE = 'application/vnd.bindle.invoice.v1+toml';
/** The `artifactType` of a referrer manifest carrying one invoice signature (in its annotations). */
export const BINDLE_SIGNATURE_ARTIFACT_TYPE = 'application/vnd.bindle.signature.v1';

/** The image-spec empty descriptor: the two bytes `{}`. */
export const EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
export const EMPTY_BLOB: Buffer = Buffer.from('{}', 'utf8');
export const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** Pre-defined OCI annotation keys this mapping fills in. */
export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_DESCRIPTION = 'org.opencontainers.image.description';
export const ANNOTATION_AUTHORS = 'org.opencontainers.image.authors';

/** Bindle's own annotation keys (reverse-domain `io.bindle.`): one per signature field. */
export const ANNOTATION_SIGNATURE_BY = 'io.bindle.signature.by';
export const ANNOTATION_SIGNATURE_ROLE = 'io.bindle.signature.role';
export const ANNOTATION_SIGNATURE_KEY = 'io.bindle.signature.key';
export const ANNOTATION_SIGNATURE_AT = 'io.bindle.signature.at';
export const ANNOTATION_SIGNATURE_VALUE = 'io.bindle.signature.signature';

/** Response header marking a yanked bindle's manifest, served by digest only. */
export const BINDLE_YANKED_HEADER = 'bindle-yanked';
