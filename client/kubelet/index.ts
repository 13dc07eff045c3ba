/**
 * The kubelet as a library: the module store (references → verified local files), module
 * references, pod manifests, the runner with its sandbox and cgroups, pod logs and status, and
 * the Kubelet itself.
 */
export * from './module-ref.js';
export * from './module-store.js';
export * from './entrypoint.js';
export * from './parcel-files.js';
export * from './pod-manifests.js';
export * from './pod-status.js';
export * from './cgroups.js';
export * from './sandbox.js';
export * from './pod-log.js';
export * from './runner.js';
export * from './pod-worker.js';
export * from './kubelet.js';
