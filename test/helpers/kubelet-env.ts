/**
 * What the kubelet tests share: the WebAssembly fixtures assembled once per test process, an
 * in-process Bindle server listening on 127.0.0.1 (real storage), pushing signed bindles to it
 * with the client library, and a module store on a temp cache directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Invoice, SecretKeyEntry } from '../../schema/index.js';
import type { Keyring } from '../../core/signing/keyring.js';
import { parseStrategy } from '../../core/signing/verification.js';
import { BindleClient } from '../../client/lib/index.js';
import { ModuleStore } from '../../client/kubelet/module-store.js';
import { detectModuleRuntime, type ModuleRuntime } from '../../client/kubelet/runner.js';
import { buildWasmFixtures } from '../../scripts/build-wasm-fixtures.js';
import { creatorKeyring, signedInvoice, type TestParcel } from './bindles.js';
import { makeTestApp, type TestApp, type TestAppOptions } from './test-app.js';

let built: Promise<Map<string, Buffer>> | undefined;
let runtime: Promise<{ runtime: ModuleRuntime; log: string[] }> | undefined;

/**
 * The module runtime of this machine (sandbox and cgroups), detected once per test process;
 * `log` collects what it reported (e.g. limits it cannot enforce).
 */
export function moduleRuntime(): Promise<{ runtime: ModuleRuntime; log: string[] }> {
  runtime ??= (async () => {
    const log: string[] = [];
    return { runtime: await detectModuleRuntime({ log: (m) => log.push(m) }), log };
  })();
  return runtime;
}

/** The assembled fixtures/wasm modules by stem (`hello`, `echo`, `cat`, `exit3`, `spin`, `grow`). */
export function wasmModules(): Promise<Map<string, Buffer>> {
  built ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bindle-wasm-'));
    try {
      const paths = await buildWasmFixtures(dir);
      const out = new Map<string, Buffer>();
      for (const [stem, path] of paths) out.set(stem, await readFile(path));
      return out;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return built;
}

/** One assembled fixture module. */
export async function wasm(stem: string): Promise<Buffer> {
  const module = (await wasmModules()).get(stem);
  if (module === undefined) throw new Error(`no fixture fixtures/wasm/${stem}.wat`);
  return module;
}

/** A wasm parcel for `signedInvoice`. */
export function wasmParcel(name: string, data: Buffer): TestParcel {
  return { name, data, mediaType: 'application/wasm' };
}

export interface ListeningApp {
  ta: TestApp;
  /** e.g. http://127.0.0.1:40123/v1/ */
  url: string;
}

/** A test app listening on 127.0.0.1, port 0 (closed at teardown by makeTestApp). */
export async function listeningApp(t: Test, opts: TestAppOptions = {}): Promise<ListeningApp> {
  const ta = await makeTestApp(t, opts);
  const address = await ta.app.listen({ host: '127.0.0.1', port: 0 });
  return { ta, url: `${address}/v1/` };
}

/** A client that publishes (no keyring needed). Closed at teardown. */
export function publisher(t: Test, url: string): BindleClient {
  const client = new BindleClient({ baseUrl: url, retries: 0 });
  t.teardown(() => client.close());
  return client;
}

/** Creates the invoice (signed by `opts.key`, default the test creator) and uploads its parcels. */
export async function pushBindle(
  client: BindleClient,
  name: string,
  version: string,
  parcels: readonly TestParcel[],
  opts: { key?: SecretKeyEntry; extra?: Partial<Invoice> } = {},
): Promise<Invoice> {
  const invoice = signedInvoice(name, version, parcels, opts);
  const created = await client.createInvoice(invoice);
  for (const p of parcels) {
    const parcel = created.invoice.parcel?.find((x) => x.label.name === p.name);
    if (parcel !== undefined) await client.createParcel(`${name}/${version}`, parcel.label, p.data);
  }
  return created.invoice;
}

export interface StoreSetup {
  store: ModuleStore;
  client: BindleClient;
  cacheDir: string;
  /** Every line the store logged. */
  logs: string[];
}

/**
 * A module store on a fresh cache directory, verifying with `keyring` (default: the test
 * keyring) and `strategy` (default CreativeIntegrity, the kubelet's default). Cleaned up at teardown.
 */
export function moduleStore(t: Test, url: string, opts: { keyring?: Keyring; strategy?: string; cacheDir?: string } = {}): StoreSetup {
  const cacheDir = opts.cacheDir ?? mkdtempSync(join(tmpdir(), 'bindle-kubelet-cache-'));
  const client = new BindleClient({
    baseUrl: url,
    keyring: opts.keyring ?? creatorKeyring(),
    strategy: parseStrategy(opts.strategy ?? 'CreativeIntegrity'),
    retries: 0,
    timeoutMs: 5000,
  });
  const logs: string[] = [];
  t.teardown(async () => {
    await client.close();
    if (opts.cacheDir === undefined) rmSync(cacheDir, { recursive: true, force: true });
  });
  return { store: new ModuleStore({ client, cacheDir, log: (m) => logs.push(m) }), client, cacheDir, logs };
}
