/**
 * The client library: BindleClient, the push/fetch workflows, standalone bindles, the OCI pull
 * client, and the helpers they share (error mapping, digest checks, bounded parallelism), with
 * the errors it throws (BindleError), the Keyring and strategies it verifies invoices with, and
 * the types of the Bindle data model (Invoice, Parcel, Label, ...).
 */
export { BindleError, isBindleError, type ErrorCode } from '../../core/errors/bindle-error.js';
export { Keyring } from '../../core/signing/keyring.js';
export { DEFAULT_STRATEGY, formatStrategy, parseStrategy, type VerificationStrategy } from '../../core/signing/verification.js';
export type * from '../../schema/types.js';
export * from './bindle-client.js';
export * from './workflows.js';
export * from './http-errors.js';
export * from './parcel-digest.js';
export { mapLimit } from '../../core/concurrency.js';
export * from './backoff.js';
export * from './device-flow.js';
export * from './oci-registry-client.js';
export * from '../standalone/standalone-bindle.js';
