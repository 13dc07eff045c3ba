/**
 * Driving a real `bindle-kubelet` through its manifest directory in end-to-end tests: starting
 * the built daemon (killed at teardown), dropping a one-container Pod manifest atomically (as an
 * editor or `kubectl` would: write, then rename) and waiting, bounded, for the pod's status.json
 * to reach a final phase.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { PodStatus } from '../../client/kubelet/pod-status.js';
import { KUBELET_BIN } from './server-process.js';
import { trackChild } from '../../bench/lib/cleanup.js';

/** A running kubelet daemon. */
export interface KubeletProcess {
  child: ChildProcess;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Everything it wrote to stdout and stderr so far. */
  log: () => string;
}

/** Starts the built kubelet with `args` (and `env`, default the test's); SIGKILLed at teardown if still running. */
export function startKubelet(t: Test, args: readonly string[], env: NodeJS.ProcessEnv = process.env): KubeletProcess {
  const child = trackChild(spawn(process.execPath, [KUBELET_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, exited, log: () => output };
}

/** Writes `<manifests>/<pod>.yaml`: one container `main` running `image`, with `annotations` (name → value). */
export function dropPod(manifests: string, pod: string, image: string, restartPolicy: string, annotations: Record<string, string> = {}): void {
  const notes = Object.entries(annotations).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
  const meta = notes === '' ? '' : `  annotations:\n${notes}`;
  const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${pod}\n${meta}spec:\n  restartPolicy: ${restartPolicy}\n  containers:\n    - name: main\n      image: ${image}\n`;
  writeFileSync(join(manifests, `.${pod}.tmp`), text);
  renameSync(join(manifests, `.${pod}.tmp`), join(manifests, `${pod}.yaml`));
}

/** The pod's status once it Succeeded or Failed (polled every 50 ms, at most `polls` times); `log()` goes into the error otherwise. */
export async function finalPodStatus(stateDir: string, pod: string, log: () => string, polls = 1200): Promise<PodStatus> {
  const path = join(stateDir, 'pods', pod, 'status.json');
  for (let i = 0; i < polls; i++) {
    if (existsSync(path)) {
      const s = JSON.parse(readFileSync(path, 'utf8')) as PodStatus;
      if (s.phase === 'Succeeded' || s.phase === 'Failed') return s;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pod ${pod} did not finish\nkubelet:\n${log()}`);
}
