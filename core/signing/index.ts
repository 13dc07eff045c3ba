/**
 * Signing and trust: strict key and signature encodings, key files, invoice signing and
 * yanking, and verification strategies.
 */
export * from './base64.js';
export * from './ed25519-point.js';
export * from './roles.js';
export * from './keys.js';
export * from './keyring.js';
export * from './secret-key-store.js';
export * from './cleartext.js';
export * from './sign.js';
export * from './verification.js';
export * from './verifier.js';
export * from './signer.js';
export * from './trust-store.js';
export * from './signature-standing.js';
