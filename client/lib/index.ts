/**
 * The client library: BindleClient, the push/fetch workflows, standalone bindles, the OCI pull
 * client, and the helpers they share (error mapping, digest checks, bounded parallelism).
 */
export * from './bindle-client.js';
export * from './workflows.js';
export * from './http-errors.js';
export * from './parcel-digest.js';
export * from './concurrency.js';
export * from './backoff.js';
export * from './device-flow.js';
export * from './oci-registry-client.js';
export * from '../standalone/standalone-bindle.js';
