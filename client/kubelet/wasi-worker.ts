/**
 * What runs inside a module's worker thread: one WASI preview1 command module, reporting how
 * it ended. The runner (runner.ts) starts the worker from `WASI_WORKER_SOURCE` (an eval'd
 * script with no loader hooks, so it starts in milliseconds whether the kubelet runs from
 * dist/ or from source) with already verified module bytes and the file descriptors to use;
 * terminating the worker kills the module, however busy it is. Node's "WASI is experimental"
 * warning is kept out of the module's output.
 *
 * `wasiWorkerMain` is shipped to the worker as source text (`Function.prototype.toString`), so
 * it must use nothing but its parameters and JavaScript globals: no imports, no helpers.
 */
import type { WASI, WASIOptions } from 'node:wasi';
import type { MessagePort } from 'node:worker_threads';

/** What the runner gives the worker. */
export interface WasiWorkerData {
  /** The module's bytes (already checked against its label). */
  module: Uint8Array;
  /** argv, argv[0] included. */
  args: string[];
  env: Record<string, string>;
  /** Guest path → host directory. */
  preopens: Record<string, string>;
  stdin: number;
  stdout: number;
  stderr: number;
}

/** How the module ended, as the worker reports it. */
export type WasiWorkerReply =
  | { kind: 'exit'; exitCode: number }
  | { kind: 'trap'; message: string }
  | { kind: 'start-error'; message: string };

/** The part of the WebAssembly JS API used here (the project's TypeScript libs have no WebAssembly types). */
interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<object>;
  /** With a compiled module, resolves to the instance. */
  instantiate(module: object, imports: object): Promise<object>;
  Module: { exports(module: object): Array<{ name: string; kind: string }> };
}
declare const WebAssembly: WebAssemblyApi;

/** What `wasiWorkerMain` gets from the worker script. */
export interface WasiWorkerDeps {
  /** Loads node:wasi (after the warning filter is in place). */
  loadWasi: () => new (options: WASIOptions) => WASI;
  parentPort: MessagePort | null;
  workerData: unknown;
  process: NodeJS.Process;
}

/** The worker's body (see the module comment for its constraints). */
export async function wasiWorkerMain(deps: WasiWorkerDeps): Promise<void> {
  deps.process.removeAllListeners('warning');
  deps.process.on('warning', (warning: Error) => {
    if (warning.name === 'ExperimentalWarning' && warning.message.includes('WASI')) return;
    deps.process.stderr.write(`${warning.name}: ${warning.message}\n`);
  });
  const data = deps.workerData as WasiWorkerData;
  let reply: WasiWorkerReply;
  let instance: object | undefined;
  let wasi: WASI | undefined;
  try {
    const compiled = await WebAssembly.compile(data.module);
    const exports = WebAssembly.Module.exports(compiled);
    if (!exports.some((e) => e.name === '_start' && e.kind === 'function')) {
      reply = { kind: 'start-error', message: 'the module exports no _start function: it is not a WASI command' };
    } else if (!exports.some((e) => e.name === 'memory' && e.kind === 'memory')) {
      reply = { kind: 'start-error', message: 'the module exports no memory: WASI needs it' };
    } else {
      const Wasi = deps.loadWasi();
      wasi = new Wasi({
        version: 'preview1',
        args: data.args,
        env: data.env,
        preopens: data.preopens,
        stdin: data.stdin,
        stdout: data.stdout,
        stderr: data.stderr,
        returnOnExit: true,
      });
      instance = await WebAssembly.instantiate(compiled, wasi.getImportObject());
      reply = { kind: 'exit', exitCode: 0 };
    }
  } catch (err) {
    reply = { kind: 'start-error', message: err instanceof Error ? err.message : String(err) };
  }
  if (wasi !== undefined && instance !== undefined) {
    try {
      reply = { kind: 'exit', exitCode: wasi.start(instance) };
    } catch (err) {
      reply = { kind: 'trap', message: err instanceof Error ? err.message : String(err) };
    }
  }
  deps.parentPort?.postMessage(reply);
}

/** The eval'd worker script: loads its dependencies and calls `wasiWorkerMain`. */
export const WASI_WORKER_SOURCE = [
  "const { parentPort, workerData } = require('node:worker_threads');",
  `(${wasiWorkerMain.toString()})({ loadWasi: () => require('node:wasi').WASI, parentPort, workerData, process });`,
].join('\n');
