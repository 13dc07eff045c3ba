/** The Bindle <-> OCI mapping (pure, no server imports): media types, names, manifests. */
export * from './oci-media-types.js';
export * from './oci-names.js';
export * from './oci-manifest.js';
export * from './bindle-manifest.js';
