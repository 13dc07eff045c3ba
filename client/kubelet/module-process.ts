/**
 * What runs inside a module process: one WASI preview1 command module, reporting how it
 * ended. The runner (runner.ts) starts a Node.js process per container run (`node -e
 * MODULE_PROCESS_SOURCE`: an eval'd script, no loader hooks, so it starts the same way whether
 * the kubelet runs from dist/ or from source), inside the sandbox and the container's cgroup,
 * with the container's stdin, stdout and stderr as fds 0-2 and an IPC channel. Over the
 * channel it receives one `ModuleProcessData` (the already verified module bytes, argv, env,
 * preopens) and answers with one `ModuleProcessReply`, then exits. The process runs under
 * Node's permission model with only WASI allowed, so its JavaScript side has no file,
 * child-process or worker access of its own. Node's warnings (WASI and the permission model are
 * experimental) are kept out of the module's output.
 *
 * `moduleProcessMain` is shipped as source text (`Function.prototype.toString`), so it must
 * use nothing but its parameters and JavaScript globals: no imports, no helpers.
 */
import type { WASI, WASIOptions } from 'node:wasi';

/** What the runner sends the module process. */
export interface ModuleProcessData {
  /** The module's bytes (already checked against its label). */
  module: Uint8Array;
  /** argv, argv[0] included. */
  args: string[];
  env: Record<string, string>;
  /** Guest path → directory as the process sees it. */
  preopens: Record<string, string>;
}

/** How the module ended, as the module process reports it. */
export type ModuleProcessReply =
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

/** What `moduleProcessMain` gets from the process script. */
export interface ModuleProcessDeps {
  /** Loads node:wasi. */
  loadWasi: () => new (options: WASIOptions) => WASI;
  process: NodeJS.Process;
}

/** The module process's body (see the module comment for its constraints). */
export function moduleProcessMain(deps: ModuleProcessDeps): void {
  const proc = deps.process;
  const finish = (reply: ModuleProcessReply): void => {
    if (proc.send === undefined) proc.exit(reply.kind === 'exit' ? reply.exitCode : 1);
    else proc.send(reply, () => proc.exit(0));
  };
  const run = async (data: ModuleProcessData): Promise<ModuleProcessReply> => {
    let instance: object;
    let wasi: WASI;
    try {
      const compiled = await WebAssembly.compile(data.module);
      const exports = WebAssembly.Module.exports(compiled);
      if (!exports.some((e) => e.name === '_start' && e.kind === 'function')) {
        return { kind: 'start-error', message: 'the module exports no _start function: it is not a WASI command' };
      }
      if (!exports.some((e) => e.name === 'memory' && e.kind === 'memory')) {
        return { kind: 'start-error', message: 'the module exports no memory: WASI needs it' };
      }
      const Wasi = deps.loadWasi();
      wasi = new Wasi({ version: 'preview1', args: data.args, env: data.env, preopens: data.preopens, returnOnExit: true });
      instance = await WebAssembly.instantiate(compiled, wasi.getImportObject());
    } catch (err) {
      return { kind: 'start-error', message: err instanceof Error ? err.message : String(err) };
    }
    try {
      return { kind: 'exit', exitCode: wasi.start(instance) };
    } catch (err) {
      return { kind: 'trap', message: err instanceof Error ? err.message : String(err) };
    }
  };
  proc.once('message', (data: ModuleProcessData) => {
    void run(data).then(finish);
  });
}

/**
 * The eval'd process script: loads its dependencies and calls `moduleProcessMain`. `__name` is
 * the helper esbuild (tsx, when running from source) inserts to keep function names.
 */
export const MODULE_PROCESS_SOURCE = `const __name = (f) => f; (${moduleProcessMain.toString()})({ loadWasi: () => require('node:wasi').WASI, process });`;

/**
 * Node.js flags of the module process: the permission model with WASI only, then the script.
 * `--no-turbo-fast-api-calls`: in Node 20, a WASI call made from optimised code goes through a
 * V8 fast API callback, and uvwasi's allocation there can start a garbage collection (external
 * memory pressure, e.g. after the module touched 64 MiB or more), which crashes the process
 * (SIGSEGV / abort in InvokeFirstPassWeakCallbacks). Without fast calls it does not.
 */
export const MODULE_PROCESS_ARGS: readonly string[] = ['--no-warnings', '--no-turbo-fast-api-calls', '--experimental-permission', '--allow-wasi', '-e', MODULE_PROCESS_SOURCE];
