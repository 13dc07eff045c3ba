/**
 * The module store: turns a module reference into verified files on local disk, for the
 * kubelet or any other runtime that embeds it. It resolves the reference (an exact id, or a
 * SemVer range through the server's query), gets the invoice (server or cache, by pull policy),
 * verifies it with the client's keyring and strategy, selects parcels (groups, choices,
 * features), picks the entry module, and makes sure every selected parcel is in the
 * content-addressed cache, size- and sha256-checked.
 *
 * Cache layout (shared by every pod and every bindle):
 * - `<cacheDir>/parcels/<sha256>`: parcel bytes, mode 0444, renamed into place only after the
 *   size and digest matched; a cached parcel is never downloaded again, and is re-checked on
 *   every use (a corrupt one is removed and, unless the policy is Never, fetched again);
 * - `<cacheDir>/invoices/<canonical id>.toml`: an invoice, written atomically (fsynced) only
 *   after it verified, while its parcels download; re-verified whenever it is read back.
 *
 * Durability: parcels are not fsynced (neither the file nor its rename). The cache is content
 * addressed and every use re-checks a parcel's size and sha256 (`get`, and the runner again
 * when it loads the module), so what a crash can leave — no file, an empty or short one, or
 * one with stale blocks — is found at the next use, removed and fetched again like any other
 * corrupt copy, or refused under Never. An fsync would only make the first fetch slower (it
 * waits for the whole module to reach the disk: ~10 ms for 10 MiB here) without making any
 * result more trustworthy. Invoices keep their fsync: they are small, written while the
 * parcels download, and a torn one would be an error (an invoice that does not verify is
 * refused, not silently fetched again).
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import type { Invoice, Label, Parcel } from '../../schema/index.js';
import { parseInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { writeFileAtomic } from '../../core/fs-atomic.js';
import { canonicalId, formatId, isSha256Hex, isStrictSemver, type BindleId } from '../../core/ids/bindle-id.js';
import { selectParcels, type FeatureFilter } from '../../core/selection/index.js';
import type { Keyring } from '../../core/signing/keyring.js';
import { verifyInvoice, type VerificationStrategy } from '../../core/signing/verification.js';
import type { BindleClient } from '../lib/index.js';
import { OciRegistryClient, type RegistryCredentials } from '../lib/oci-registry-client.js';
import { ANNOTATION_TITLE, BINDLE_ARTIFACT_TYPE, checkBindleManifest, isBindleManifest } from '../../core/oci/index.js';
import { descriptorLabel } from '../../core/oci/descriptor-label.js';
import { describeParcel } from '../lib/parcel-digest.js';
import { chooseEntry } from './entrypoint.js';
import { parseModuleRef, type ModuleRef, type OciImageRef } from './module-ref.js';
import { verifyParcelFile, type ParcelFile } from './parcel-files.js';
import { ANNOTATIONS, containerModuleRequest, pullPolicyOf, type PodSpec } from './pod-manifests.js';

/** Kubernetes' image pull policies, applied to bindles. */
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** What to select from a bindle. Every field is optional. */
export interface ModuleRequest {
  /** Run a yanked bindle (default false: a yanked bindle is refused with `yanked`). */
  allowYanked?: boolean;
  /** Groups to select besides the required ones. */
  groups?: string[];
  /** Feature filters (`wasm.type=entrypoint`, ...). */
  features?: FeatureFilter[];
  /** For `oneOf` groups: group → the member to use, by label name or sha256. */
  choices?: Record<string, string>;
  /** The entry module's label name (or sha256), when the bindle does not make it unambiguous. */
  module?: string;
  /** Run an OCI image that is not a bindle (a plain Wasm artifact, unsigned) (default false: refused with `unverified`). */
  allowUnsigned?: boolean;
}

/** A reference resolved to verified local files. */
export interface ResolvedModule {
  /** `name/version` of the bindle used; for an unsigned OCI image, `<registry>/<repository>@<manifest digest>`. */
  id: string;
  /** The reference as given. */
  ref: string;
  /** The verified invoice; undefined for an unsigned OCI Wasm image (run only with `allowUnsigned`). */
  invoice: Invoice | undefined;
  /** The wasm module to run, in the cache. */
  entry: ParcelFile;
  /** The other selected parcels, in invoice order, in the cache. */
  files: ParcelFile[];
  /** How many parcels this call downloaded. */
  fetched: number;
  /** How many selected parcels were already in the cache. */
  cached: number;
  /** For a range: the higher matching versions passed over because they failed verification (absent for other references). */
  skipped?: SkippedVersion[];
}

/** A version a range matched but that was not used, and why. */
export interface SkippedVersion {
  version: string;
  /** The verification failure, e.g. `unknown_signing_key: signature by … was made with a key that is not in the keyring …`. */
  reason: string;
}

/** Failures that say an invoice cannot be trusted or read (as opposed to the server or the network failing). */
const VERIFICATION_FAILURES: ReadonlySet<string> = new Set([
  'unverified',
  'unknown_signing_key',
  'no_known_key',
  'no_suitable_key',
  'corrupt_signature',
  'corrupt_key',
  'duplicate_signature',
  'missing_role',
  'invalid_invoice',
]);

/**
 * Whether `version` matches a reference's range as the server's `_q` matches its version
 * parameter: a strict version is exact (`1.0.0+build.1` only that build, `1.0.0` only the plain
 * one), anything else an npm range (which ignores build metadata). So a reference resolves to
 * the same bindle from the server and from the cache.
 */
function matchesRange(version: string, range: string): boolean {
  const text = range.trim();
  return isStrictSemver(text) ? version === text : semver.satisfies(version, text);
}

/**
 * The server's order of versions (newest SemVer precedence first; among builds of one version,
 * which SemVer ranks equal, byte order: the plain version, then its builds), so that the one a
 * range picks does not depend on the order versions were listed in.
 */
function newestFirst(a: string, b: string): number {
  return semver.rcompare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

function isVerificationFailure(err: unknown): err is BindleError {
  return isBindleError(err) && VERIFICATION_FAILURES.has(err.code);
}

export interface ModuleStoreOptions {
  /** Talks to the server; must have a keyring: its keyring and strategy verify every invoice. */
  client: BindleClient;
  /** The cache directory (created when needed). */
  cacheDir: string;
  /** Receives one line per notable step (range resolved, parcel fetched, cache repaired). */
  log?: (message: string) => void;
  /** How OCI registries are reached (default: HTTPS, anonymous). */
  registries?: RegistryAccess;
}

/** How the store reaches OCI registries for `<registry>/<repository>:<tag>` references. */
export interface RegistryAccess {
  /** Registries (`host[:port]`) spoken to over plain HTTP. */
  insecure?: readonly string[];
  /** Basic credentials for a registry (also sent to its token service), or undefined for anonymous pulls. */
  credentials?: (registry: string) => RegistryCredentials | undefined;
  timeoutMs?: number;
}

/** Where the parcels of one resolved reference come from. */
interface ParcelSource {
  /** How messages name the bindle or image. */
  what: string;
  /** Downloads the parcel to `path` (mode 0444), renamed into place only when it matches `label`. */
  download(label: Label, path: string): Promise<void>;
}

/** Layer media types of a plain (non-bindle) Wasm image. */
export const WASM_LAYER_MEDIA_TYPES: readonly string[] = ['application/wasm', 'application/vnd.wasm.content.layer.v1+wasm'];

/** OpenSSL's error codes when the peer's first bytes are not a TLS record (it speaks plain HTTP). */
const NOT_TLS: ReadonlySet<string> = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

/** The result of resolving one container's module; see `fetchPodModulesSettled`. */
export type ContainerModuleResult = { ok: true; module: ResolvedModule } | { ok: false; error: unknown };

/**
 * Contracts:
 * - Nothing is returned unless the invoice verified with the client's keyring and strategy
 *   (also when read from the cache) and every selected parcel's cached bytes matched its label.
 * - Pull policies: `Always` fetches the invoice from the server every time; `IfNotPresent`
 *   uses the cached invoice when there is one; `Never` uses only the cache and fails with
 *   `not_found` naming what is missing. Under every policy a parcel already in the cache is
 *   not fetched again, and a parcel download is shared by concurrent callers.
 * - A range reference is resolved through the server's strict query (under `Never`, through
 *   the cached invoices) to the highest matching version that is not yanked and whose invoice
 *   verifies, under every policy alike: higher ones that fail verification are passed over
 *   (logged, and listed in `skipped`); the choice is logged.
 * - A yanked bindle is refused (`yanked`) unless `allowYanked`.
 */
export class ModuleStore {
  readonly cacheDir: string;
  readonly #client: BindleClient;
  readonly #keyring: Keyring;
  readonly #strategy: VerificationStrategy;
  readonly #log: (message: string) => void;
  readonly #inFlight = new Map<string, Promise<boolean>>();
  readonly #registryAccess: RegistryAccess;
  readonly #registries = new Map<string, OciRegistryClient>();

  constructor(opts: ModuleStoreOptions) {
    if (opts.client.keyring === undefined) {
      throw new BindleError('invalid_config', 'the module store verifies every invoice: give its client a keyring');
    }
    this.#client = opts.client;
    this.#keyring = opts.client.keyring;
    this.#strategy = opts.client.strategy;
    this.cacheDir = opts.cacheDir;
    this.#log = opts.log ?? (() => undefined);
    this.#registryAccess = opts.registries ?? {};
  }

  /** Where a parcel's bytes are cached. */
  parcelPath(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new BindleError('invalid_invoice', `"${sha256}" is not a lowercase hex sha256`);
    return join(this.cacheDir, 'parcels', sha256);
  }

  /** Where an invoice is cached. */
  invoicePath(id: BindleId): string {
    return join(this.cacheDir, 'invoices', `${canonicalId(id)}.toml`);
  }

  /** Resolves `ref` to verified local files (see the class contracts). */
  async get(ref: string, pullPolicy: PullPolicy, opts: ModuleRequest = {}): Promise<ResolvedModule> {
    const parsed = parseModuleRef(ref);
    if (parsed.kind === 'oci') return this.#getImage(parsed, pullPolicy, opts);
    const allowYanked = opts.allowYanked === true;
    const { id, invoice, caching, skipped } =
      parsed.kind === 'exact'
        ? { id: parsed.id, skipped: undefined, ...(await this.#loadInvoice(parsed.id, pullPolicy, allowYanked)) }
        : await this.#resolveRange(parsed, pullPolicy, allowYanked);
    const name = formatId(id);
    const source: ParcelSource = {
      what: name,
      // downloadParcel hashes the bytes as they stream in and renames its temp file into place only
      // when size and sha256 match the label, so the download needs no second read. Not fsynced:
      // see the module comment.
      download: (label, path) => this.#client.downloadParcel(name, label, path, { yanked: allowYanked, mode: 0o444, durable: false }),
    };
    // A fetched (verified) invoice is written to the cache while its parcels download; the call
    // settles only when both are done, with the parcels' error first.
    const [resolved, cached] = await Promise.allSettled([this.#useInvoice(ref, id, invoice, pullPolicy, opts, source), caching]);
    if (resolved.status === 'rejected') throw resolved.reason;
    if (cached.status === 'rejected') throw cached.reason;
    return skipped === undefined ? resolved.value : { ...resolved.value, skipped };
  }

  /** Selects from a verified invoice and makes sure the selected parcels are in the cache. */
  async #useInvoice(ref: string, id: BindleId, invoice: Invoice, pullPolicy: PullPolicy, opts: ModuleRequest, source: ParcelSource): Promise<ResolvedModule> {
    const allowYanked = opts.allowYanked === true;
    const name = formatId(id);
    if (invoice.yanked === true) {
      if (!allowYanked) {
        throw new BindleError('yanked', `bindle ${name} is yanked; a pod may run it only with the annotation bindle.dev/allow-yanked: "true"`);
      }
      this.#log(`${ref}: running yanked bindle ${name}, as allowed`);
    }
    const selection = selectParcels(invoice, {
      ...(opts.groups !== undefined ? { groups: opts.groups } : {}),
      ...(opts.choices !== undefined ? { choices: opts.choices } : {}),
      ...(opts.features !== undefined ? { features: opts.features } : {}),
    });
    const entry = chooseEntry(invoice, selection.parcels, opts.module);
    const outcomes = await Promise.all(selection.parcels.map((p) => this.#ensureParcel(p, pullPolicy, source)));
    const fetched = outcomes.filter((o) => o.fetched).length;
    const files = outcomes.filter((o) => o.parcel !== entry).map((o) => ({ label: o.parcel.label, path: o.path }));
    this.#log(
      `${ref}: using ${name}, entry module "${entry.label.name}"; fetched ${fetched} parcel${fetched === 1 ? '' : 's'}, ${outcomes.length - fetched} from the cache`,
    );
    return {
      id: name,
      ref,
      invoice,
      entry: { label: entry.label, path: this.parcelPath(entry.label.sha256) },
      files,
      fetched,
      cached: outcomes.length - fetched,
    };
  }

  /** Resolves every container of `pod` in parallel; fails with the first failure, naming its container. */
  async fetchPodModules(pod: PodSpec): Promise<Map<string, ResolvedModule>> {
    const settled = await this.fetchPodModulesSettled(pod);
    const out = new Map<string, ResolvedModule>();
    for (const [container, result] of settled) {
      if (!result.ok) {
        const err = result.error;
        if (isBindleError(err)) throw new BindleError(err.code, `pod ${pod.name}, container "${container}": ${err.message}`, { cause: err });
        throw err;
      }
      out.set(container, result.module);
    }
    return out;
  }

  /** Resolves every container of `pod` in parallel, keeping each container's outcome. */
  async fetchPodModulesSettled(pod: PodSpec): Promise<Map<string, ContainerModuleResult>> {
    const results = await Promise.all(
      pod.containers.map(async (c): Promise<[string, ContainerModuleResult]> => {
        try {
          const module = await this.get(c.image, pullPolicyOf(c), containerModuleRequest(pod, c));
          return [c.name, { ok: true, module }];
        } catch (error) {
          return [c.name, { ok: false, error }];
        }
      }),
    );
    return new Map(results);
  }

  /**
   * The highest non-yanked version matching the range whose invoice verifies (loaded as
   * `#loadInvoice` does for that policy), and the higher ones passed over because theirs did not
   * (logged). Fails with the highest one's error when none verifies; a failure of the server or
   * the network is not passed over.
   */
  async #resolveRange(
    ref: Extract<ModuleRef, { kind: 'range' }>,
    pullPolicy: PullPolicy,
    allowYanked: boolean,
  ): Promise<{ id: BindleId; invoice: Invoice; caching: Promise<void>; skipped: SkippedVersion[] }> {
    const versions = pullPolicy === 'Never' ? await this.#cachedVersions(ref.name) : await this.#serverVersions(ref.name, ref.range);
    const matching = [...new Set(versions.filter((v) => matchesRange(v, ref.range)))].sort(newestFirst);
    if (matching.length === 0) {
      throw new BindleError(
        'not_found',
        pullPolicy === 'Never'
          ? `no cached, non-yanked version of ${ref.name} satisfies "${ref.range}" (imagePullPolicy Never: the server was not asked)`
          : `no version of ${ref.name} that is not yanked satisfies "${ref.range}" on the server`,
      );
    }
    const skipped: SkippedVersion[] = [];
    const failures: BindleError[] = [];
    for (const version of matching) {
      const id = { name: ref.name, version };
      let loaded: { invoice: Invoice; caching: Promise<void> };
      try {
        loaded = await this.#loadInvoice(id, pullPolicy, allowYanked);
      } catch (err) {
        if (!isVerificationFailure(err)) throw err;
        failures.push(err);
        skipped.push({ version, reason: `${err.code}: ${err.message}` });
        this.#log(`${ref.text}: skipping ${ref.name}/${version}, it failed verification: ${err.message} (${err.code})`);
        continue;
      }
      const passedOver = skipped.length === 0 ? '' : ` that verifies; skipped ${skipped.map((v) => v.version).join(', ')}, which failed verification`;
      this.#log(`${ref.text}: resolved to ${ref.name}/${version} (highest non-yanked version matching "${ref.range}"${passedOver})`);
      return { id, ...loaded, skipped };
    }
    const [first] = failures;
    const code = first?.code ?? 'unverified';
    throw new BindleError(
      code,
      `no version of ${ref.name} matching "${ref.range}" verifies: ${skipped.map((v) => `${v.version}: ${v.reason}`).join('; ')}`,
      { cause: first },
    );
  }

  /** Non-yanked versions of exactly `name` that the server lists for `range` (all pages). */
  async #serverVersions(name: string, range: string): Promise<string[]> {
    const versions: string[] = [];
    for (let offset = 0; ; ) {
      const reply = await this.#client.query({ query: name, strict: true, version: range, yanked: false, offset, limit: 255 });
      for (const inv of reply.invoices) {
        if (inv.bindle.name === name && inv.yanked !== true) versions.push(inv.bindle.version);
      }
      if (!reply.more || reply.invoices.length === 0) return versions;
      offset += reply.invoices.length;
    }
  }

  /** Non-yanked versions of exactly `name` among the cached invoices (verified when one is chosen). */
  async #cachedVersions(name: string): Promise<string[]> {
    const dir = join(this.cacheDir, 'invoices');
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => f.endsWith('.toml') && !f.startsWith('.'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const versions: string[] = [];
    for (const file of files) {
      try {
        const inv = parseInvoice(await readFile(join(dir, file), 'utf8'));
        if (inv.bindle.name !== name || inv.yanked === true) continue;
        if (file !== `${canonicalId({ name, version: inv.bindle.version })}.toml`) continue;
        versions.push(inv.bindle.version);
      } catch {
        continue;
      }
    }
    return versions;
  }

  /**
   * The verified invoice, from the cache or the server (by `pullPolicy`); for one from the
   * server, `caching` writes it to the cache (it has verified by then).
   */
  async #loadInvoice(id: BindleId, pullPolicy: PullPolicy, allowYanked: boolean): Promise<{ invoice: Invoice; caching: Promise<void> }> {
    const name = formatId(id);
    const path = this.invoicePath(id);
    if (pullPolicy !== 'Always') {
      let cached: Invoice | undefined;
      try {
        cached = await this.#readCachedInvoice(id, path);
      } catch (err) {
        // A cached invoice that does not parse or verify (a torn write, bit rot, tampering, a key
        // no longer trusted) is fetched again, and verified the same way, unless the policy is Never.
        if (pullPolicy === 'Never' || !isBindleError(err)) throw err;
        this.#log(`${err.message}; fetching it from the server again`);
      }
      if (cached !== undefined) return { invoice: cached, caching: Promise.resolve() };
      if (pullPolicy === 'Never') {
        throw new BindleError('not_found', `bindle ${name} is not in the module cache (${this.cacheDir}) and imagePullPolicy is Never`);
      }
    }
    // Verified once, here, where the trust decision is made (the client checks the id too).
    const invoice = await this.#client.getInvoice(name, { yanked: allowYanked, verify: false });
    if (invoice.bindle.name !== id.name || invoice.bindle.version !== id.version) {
      throw new BindleError('unverified', `the server answered ${invoice.bindle.name}/${invoice.bindle.version} when asked for ${name}`);
    }
    try {
      verifyInvoice(invoice, this.#keyring, this.#strategy);
    } catch (err) {
      if (isBindleError(err)) throw new BindleError(err.code, `fetching invoice ${name}: it failed verification: ${err.message}`, { cause: err });
      throw err;
    }
    return { invoice, caching: writeFileAtomic(path, renderInvoice(invoice, 'toml'), 0o644) };
  }

  /** The cached invoice, re-verified; undefined when there is none. An invalid or untrusted cached invoice is an error. */
  async #readCachedInvoice(id: BindleId, path: string): Promise<Invoice | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const name = formatId(id);
    let invoice: Invoice;
    try {
      invoice = parseInvoice(text);
    } catch (err) {
      throw new BindleError('invalid_invoice', `the cached invoice of ${name} (${path}) is not valid: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (invoice.bindle.name !== id.name || invoice.bindle.version !== id.version) {
      throw new BindleError('unverified', `the cached invoice at ${path} is ${invoice.bindle.name}/${invoice.bindle.version}, not ${name}`);
    }
    try {
      verifyInvoice(invoice, this.#keyring, this.#strategy);
    } catch (err) {
      if (isBindleError(err)) throw new BindleError(err.code, `the cached invoice of ${name} (${path}) failed verification: ${err.message}`, { cause: err });
      throw err;
    }
    return invoice;
  }

  /**
   * Makes sure the parcel is in the cache and matches its label; says whether this call
   * downloaded it. Concurrent calls for one sha256 share one check-and-download.
   */
  async #ensureParcel(parcel: Parcel, pullPolicy: PullPolicy, source: ParcelSource): Promise<{ parcel: Parcel; path: string; fetched: boolean }> {
    const path = this.parcelPath(parcel.label.sha256);
    const shared = this.#inFlight.get(parcel.label.sha256);
    if (shared !== undefined) {
      await shared;
      return { parcel, path, fetched: false };
    }
    const task = this.#checkOrDownload(parcel.label, path, pullPolicy, source);
    this.#inFlight.set(parcel.label.sha256, task);
    try {
      return { parcel, path, fetched: await task };
    } finally {
      this.#inFlight.delete(parcel.label.sha256);
    }
  }

  /** True when the parcel had to be downloaded; a corrupt cached copy is removed first. */
  async #checkOrDownload(label: Label, path: string, pullPolicy: PullPolicy, source: ParcelSource): Promise<boolean> {
    let corrupt: string | undefined;
    try {
      await verifyParcelFile(path, label);
      return false;
    } catch (err) {
      if (!isBindleError(err)) throw this.#unusableCacheEntry(label, path, err);
      if (err.code !== 'not_found') {
        corrupt = err.message;
        this.#log(`removing corrupt cached parcel: ${err.message}`);
        try {
          await rm(path, { force: true });
        } catch (rmErr) {
          throw this.#unusableCacheEntry(label, path, rmErr);
        }
      }
    }
    if (pullPolicy === 'Never') {
      throw new BindleError(
        'not_found',
        corrupt !== undefined
          ? `the cached copy of ${describeParcel(label)} of ${source.what} in the module cache (${this.cacheDir}) was corrupt and has been removed (${corrupt}), and imagePullPolicy is Never`
          : `${describeParcel(label)} of ${source.what} is not in the module cache (${this.cacheDir}) and imagePullPolicy is Never`,
      );
    }
    await source.download(label, path);
    this.#log(`fetched ${describeParcel(label)}, ${label.size} bytes, of ${source.what}`);
    return true;
  }

  /**
   * `err` with a hint when it is OpenSSL's answer to a registry that speaks plain HTTP where
   * HTTPS was expected (it is not listed with --insecure-registry); else `err` itself.
   */
  #plainHttpHint(registry: string, err: unknown): unknown {
    if (!isBindleError(err) || this.#registryAccess.insecure?.includes(registry) === true) return err;
    const cause: unknown = err.cause;
    const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
    if (!(typeof code === 'string' && NOT_TLS.has(code)) && !/wrong version number|does not speak TLS/i.test(err.message)) return err;
    return new BindleError(
      err.code,
      `${err.message} (${registry} does not speak TLS: if it is a plain-HTTP registry, list it with --insecure-registry ${registry} or BINDLE_KUBELET_INSECURE_REGISTRIES)`,
      { cause: err },
    );
  }

  /** An error saying that the module cache's file for `label` cannot be read or replaced (e.g. a directory is there). */
  #unusableCacheEntry(label: Label, path: string, err: unknown): BindleError {
    const errno = (err as NodeJS.ErrnoException).code;
    const why = errno === 'EISDIR' || errno === 'ERR_FS_EISDIR' ? 'it is a directory, not a file' : err instanceof Error ? err.message : String(err);
    return new BindleError(
      'internal',
      `the module cache (${this.cacheDir}) cannot hold ${describeParcel(label)}: ${path} cannot be checked or replaced: ${why}; remove it`,
      { cause: err },
    );
  }

  /** The client for `registry` (one per registry, kept). */
  #registry(registry: string): OciRegistryClient {
    let client = this.#registries.get(registry);
    if (client === undefined) {
      const access = this.#registryAccess;
      const credentials = access.credentials?.(registry);
      client = new OciRegistryClient({
        registry,
        insecure: access.insecure?.includes(registry) === true,
        ...(credentials !== undefined ? { credentials } : {}),
        ...(access.timeoutMs !== undefined ? { timeoutMs: access.timeoutMs } : {}),
        userAgent: this.#client.userAgent,
      });
      this.#registries.set(registry, client);
    }
    return client;
  }

  /**
   * Resolves an OCI image. Its manifest is fetched every time (under `Never` it is refused: only
   * bindle: references are resolved from the cache alone); its blobs go into the same
   * content-addressed cache as parcels. A bindle (artifactType `application/vnd.bindle.invoice.v1`)
   * is verified exactly as a `bindle:` reference: its config is the invoice, checked against the
   * keyring, and its layers must be the invoice's parcels. Anything else runs only when it is a
   * plain Wasm image (one layer of a WASM_LAYER_MEDIA_TYPES type) and `allowUnsigned`.
   */
  async #getImage(ref: OciImageRef, pullPolicy: PullPolicy, opts: ModuleRequest): Promise<ResolvedModule> {
    if (pullPolicy === 'Never') {
      throw new BindleError('not_found', `${ref.text}: an OCI image's manifest is always fetched from its registry, and imagePullPolicy is Never`);
    }
    const registry = this.#registry(ref.registry);
    const pulled = await registry.getManifest(ref.repository, ref.reference).catch((err: unknown) => {
      throw this.#plainHttpHint(ref.registry, err);
    });
    const image = `${ref.registry}/${ref.repository}@${pulled.digest}`;
    const source: ParcelSource = { what: image, download: (label, path) => registry.downloadBlob(ref.repository, label, path, 0o444) };
    const { manifest } = pulled;
    if (isBindleManifest(manifest)) {
      const configBytes = await registry.getBlob(ref.repository, manifest.config, `the invoice (config) of ${image}`);
      let invoice: Invoice;
      try {
        invoice = parseInvoice(configBytes.toString('utf8'), 'toml');
        checkBindleManifest(manifest, configBytes, invoice);
        verifyInvoice(invoice, this.#keyring, this.#strategy);
      } catch (err) {
        if (isBindleError(err)) throw new BindleError(err.code, `${ref.text}: the bindle in ${image} failed verification: ${err.message}`, { cause: err });
        throw err;
      }
      const id = { name: invoice.bindle.name, version: invoice.bindle.version };
      this.#log(`${ref.text}: ${image} is bindle ${formatId(id)}, verified`);
      return this.#useInvoice(ref.text, id, invoice, pullPolicy, opts, source);
    }
    const wasm = manifest.layers.filter((l) => WASM_LAYER_MEDIA_TYPES.includes(l.mediaType));
    const only = wasm[0];
    if (only === undefined || wasm.length > 1) {
      throw new BindleError(
        'unsupported',
        `${ref.text}: ${image} is neither a bindle (artifactType ${BINDLE_ARTIFACT_TYPE}) nor a Wasm image with one layer of type ${WASM_LAYER_MEDIA_TYPES.join(' or ')} ` +
          `(it has ${wasm.length} such layers; artifactType ${manifest.artifactType ?? 'none'}, config ${manifest.config.mediaType})`,
      );
    }
    if (opts.allowUnsigned !== true) {
      throw new BindleError(
        'unverified',
        `${ref.text}: ${image} is an unsigned Wasm image, not a signed bindle; a pod may run it only with the annotation ${ANNOTATIONS.allowUnsigned}: "true" ` +
          '(bindle-kubelet run: only with --allow-unsigned)',
      );
    }
    const label = descriptorLabel(only, only.annotations?.[ANNOTATION_TITLE] ?? 'module.wasm');
    const parcel: Parcel = { label };
    const outcome = await this.#ensureParcel(parcel, pullPolicy, source);
    this.#log(`${ref.text}: running the unsigned Wasm image ${image}, as allowed; ${outcome.fetched ? 'fetched' : 'cached'} its module`);
    return {
      id: image,
      ref: ref.text,
      invoice: undefined,
      entry: { label, path: outcome.path },
      files: [],
      fetched: outcome.fetched ? 1 : 0,
      cached: outcome.fetched ? 0 : 1,
    };
  }
}
