/**
 * Pod status as the kubelet reports it in `<state>/pods/<pod>/status.json`: Kubernetes'
 * PodStatus shape (phase, reason, message, containerStatuses with waiting / running /
 * terminated states, lastState and restartCount), the phase rules, and the atomic writer.
 */
import { writeFileAtomic } from '../../core/fs-atomic.js';
import type { RestartPolicy } from './pod-manifests.js';

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

/** Kubernetes' container states. Times are ISO 8601 strings. */
export type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; reason: string; message?: string; startedAt: string; finishedAt: string } };

/** One container's status. */
export interface ContainerStatus {
  name: string;
  /** The module reference from the manifest. */
  image: string;
  /** The bindle it resolved to (`name/version`), once resolved. */
  imageID?: string;
  /** The entry module's label name and sha256, once resolved. */
  module?: { name: string; sha256: string };
  /** True while the module runs. */
  started: boolean;
  ready: boolean;
  restartCount: number;
  state: ContainerState;
  /** The previous run's termination, once the container has been restarted or is waiting to be. */
  lastState?: ContainerState;
}

/** The document written to status.json. */
export interface PodStatus {
  name: string;
  /** The manifest file the pod came from. */
  manifest: string;
  phase: PodPhase;
  /** Why the pod is in its phase when that needs saying: `ModuleRefused`, `Deleted`, `KubeletStopped`, `RestartLimitReached`. */
  reason?: string;
  message?: string;
  restartPolicy: RestartPolicy;
  startTime: string;
  /** When this status was written. */
  updatedAt: string;
  containerStatuses: ContainerStatus[];
}

/** What the phase rules need to know about one container. */
export interface ContainerProgress {
  status: ContainerStatus;
  /** The module has run at least once. */
  ranOnce: boolean;
  /** It will not run (again). */
  final: boolean;
}

/**
 * Kubernetes' phase rules: `Pending` until every container has run or been given up on;
 * `Succeeded` / `Failed` once every container is final (all exit 0 / any other ending, or a
 * container that never ran); `Running` otherwise (running, or waiting to be restarted).
 */
export function podPhase(containers: readonly ContainerProgress[]): PodPhase {
  if (containers.some((c) => !c.ranOnce && !c.final)) return 'Pending';
  if (!containers.every((c) => c.final)) return 'Running';
  const succeeded = containers.every((c) => 'terminated' in c.status.state && c.status.state.terminated.exitCode === 0);
  return succeeded ? 'Succeeded' : 'Failed';
}

/** Writes the status atomically (readers see the old document or the new one), mode 0644. */
export async function writePodStatus(path: string, status: PodStatus): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(status, null, 2)}\n`, 0o644);
}
