/**
 * What a running command needs, created on first use (heavy modules are imported then, so that
 * help, usage errors and local commands start quickly): the resolved settings, the keyring, a
 * BindleClient for the configured server, and transfer reporters. `close` releases the client.
 */
import { isBindleError } from '../../core/errors/bindle-error.js';
import { Keyring } from '../../core/signing/keyring.js';
import { VERSION } from '../../core/version.js';
import type { Dispatcher } from 'undici';
import type { BindleClient } from '../lib/bindle-client.js';
import { NON_BINDLE_REPLY } from '../lib/http-errors.js';
import type { Label } from '../../schema/index.js';
import { printLine, type CliIo } from './cli-io.js';
import { loadCredentials, type CliSettings } from './settings.js';
import { createTransferReporter, type TransferReporter } from './transfer-progress.js';

/** The per-invocation context of a command. */
export class CliContext {
  readonly io: CliIo;
  readonly settings: CliSettings;
  #keyring: Promise<Keyring> | undefined;
  #client: Promise<BindleClient> | undefined;
  #plainClient: Promise<BindleClient> | undefined;
  #anonymousClient: Promise<BindleClient> | undefined;
  #insecureAgent: Dispatcher | undefined;
  #preloading = false;

  constructor(io: CliIo, settings: CliSettings) {
    this.io = io;
    this.settings = settings;
  }

  /** The keyring at `settings.keyringPath` (empty when the file does not exist). */
  keyring(): Promise<Keyring> {
    this.#keyring ??= Keyring.loadOrEmpty(this.settings.keyringPath);
    return this.#keyring;
  }

  /** A client for `settings.serverUrl`, verifying invoices with the keyring and strategy. */
  client(): Promise<BindleClient> {
    this.#client ??= this.#makeClient(true, true);
    return this.#client;
  }

  /**
   * A client that does not verify invoices, for commands that never hand an invoice on as
   * trusted: writes (push compares the server's invoice with the caller's own signed release,
   * so a publisher needs no keyring), search listings, and fetching host keys.
   */
  plainClient(): Promise<BindleClient> {
    this.#plainClient ??= this.#makeClient(false, true);
    return this.#plainClient;
  }

  /** A client that sends no credentials and verifies nothing, for `bindle login`. */
  anonymousClient(): Promise<BindleClient> {
    this.#anonymousClient ??= this.#makeClient(false, false);
    return this.#anonymousClient;
  }

  /**
   * Starts loading the HTTP stack (the client module and undici, ~60 ms of a start-up) without
   * waiting for it, for a command that will talk to a server after local work of its own (`push`
   * reading and hashing a bindle): the module is then compiled while that work waits for the
   * disk (a call once it does, so not before it: compiling first only delays it). Loads code
   * only (no request, no credentials): a failure to load shows where the client is made.
   */
  preloadClient(): void {
    if (this.#preloading) return;
    this.#preloading = true;
    import('../lib/bindle-client.js').catch(() => undefined);
  }

  /**
   * The HTTP stack (undici) is loaded only by commands that talk to a server. A login stored by
   * `bindle login` that has expired is refreshed before its token is used.
   */
  async #makeClient(verifying: boolean, authenticated: boolean): Promise<BindleClient> {
    const { BindleClient: Client, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS } = await import('../lib/bindle-client.js');
    if (authenticated && this.settings.basicAuth === undefined) {
      const { refreshStoredLogin } = await import('./stored-login.js');
      await refreshStoredLogin(this.settings.tokenFile.path, this.settings.timeoutMs !== undefined ? { timeoutMs: this.settings.timeoutMs } : {});
    }
    const credentials = authenticated ? await loadCredentials(this.settings) : undefined;
    const keyring = verifying ? await this.keyring() : undefined;
    if (this.settings.insecure && this.#insecureAgent === undefined) {
      const timeout = this.settings.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const { Agent } = await import('undici');
      // Capped like a client's own Agent (see ClientOptions.concurrency).
      this.#insecureAgent = new Agent({
        connect: { rejectUnauthorized: false, timeout },
        headersTimeout: timeout,
        bodyTimeout: timeout,
        connections: DEFAULT_CONCURRENCY,
      });
    }
    return new Client({
      baseUrl: this.settings.serverUrl,
      strategy: this.settings.strategy,
      userAgent: `bindle-cli/${VERSION}`,
      ...(keyring !== undefined ? { keyring } : {}),
      ...(credentials !== undefined ? { credentials } : {}),
      ...(this.#insecureAgent !== undefined ? { dispatcher: this.#insecureAgent } : {}),
      ...(this.settings.timeoutMs !== undefined ? { timeoutMs: this.settings.timeoutMs } : {}),
      ...(this.settings.retries !== undefined ? { retries: this.settings.retries } : {}),
    });
  }

  /**
   * A hint for a failure to trust what was fetched: a yanked bindle, a parcel failing its digest
   * or size check, or an invoice failing verification (unknown signer, no known key, missing
   * role; the hint names the keyring and strategy and how to trust more keys). Undefined for
   * other errors.
   */
  readonly trustHint = (err: unknown): string | undefined => {
    if (isBindleError(err, 'yanked')) return 'pass --yanked to fetch a yanked bindle anyway';
    if (isBindleError(err, 'digest_mismatch') || isBindleError(err, 'size_mismatch')) {
      return 'parcel digest check failed: the data is corrupt or was tampered with, and nothing was kept';
    }
    if (!isBindleError(err)) return undefined;
    if (err.code !== 'unknown_signing_key' && err.code !== 'no_known_key' && err.code !== 'missing_role') return undefined;
    return `keyring ${this.settings.keyringPath}, strategy ${this.settings.strategyName}: trust a signer with 'bindle keys add' or the server's host keys with 'bindle keys fetch'`;
  };

  /**
   * A hint for a failure of the server itself, whatever the command: a `no route` 404 (the URL
   * lacks the API path), a 404 or 405 that is not a Bindle reply (the URL points at something
   * else, e.g. the server's OCI API `/v2/`), a full disk on the server. Undefined for other errors.
   */
  readonly serverHint = (err: unknown): string | undefined => {
    if (isBindleError(err, 'insufficient_storage')) return 'the server is out of storage space: ask its operator to free some';
    const suggestion = apiRootSuggestion(this.settings.serverUrl);
    if (isBindleError(err, 'not_found') && /no route for /.test(err.message)) {
      return suggestion === undefined
        ? `${this.settings.serverUrl} does not serve the Bindle API: check --server (BINDLE_URL)`
        : `${this.settings.serverUrl} is not the API path: set --server (BINDLE_URL) to ${suggestion}`;
    }
    if ((isBindleError(err, 'not_found') || isBindleError(err, 'method_not_allowed')) && err.message.includes(NON_BINDLE_REPLY)) {
      return `is --server (BINDLE_URL) the Bindle API root, e.g. ${suggestion ?? 'http://host:8080/v1/'}?`;
    }
    return undefined;
  };

  /** Prints one line to stdout. */
  print(text: string): void {
    printLine(this.io, text);
  }

  /**
   * A transfer reporter on stdout; live bars only when stdout is a terminal and progress is on.
   * Without `doneLine` (a command printing JSON) it prints nothing at all.
   */
  reporter(doneLine?: (label: Label) => string): TransferReporter {
    if (doneLine === undefined) return createTransferReporter(this.io.stdout, { live: false });
    return createTransferReporter(this.io.stdout, { live: this.#liveProgress(), doneLine });
  }

  /**
   * A reporter for long local steps only (hashing, compressing): live bars on a terminal, else
   * nothing; nothing either when `shown` is false (a command printing JSON).
   */
  stepReporter(shown = true): TransferReporter {
    return createTransferReporter(this.io.stdout, { live: shown && this.#liveProgress() });
  }

  #liveProgress(): boolean {
    return this.settings.progress && this.io.stdout.isTTY === true && this.io.env.TERM !== 'dumb';
  }

  /** Closes the clients that were created. */
  async close(): Promise<void> {
    const pending = [this.#client, this.#plainClient, this.#anonymousClient];
    this.#client = undefined;
    this.#plainClient = undefined;
    this.#anonymousClient = undefined;
    for (const client of pending) {
      if (client === undefined) continue;
      try {
        await (await client).close();
      } catch {
        // a client that failed to start holds nothing to release
      }
    }
    const agent = this.#insecureAgent;
    this.#insecureAgent = undefined;
    if (agent !== undefined) await agent.close();
  }
}

/**
 * The Bindle API root a server URL probably meant: `<origin>/v1/` in place of the OCI API root
 * `/v2/`, else the URL's path with `v1/` added; undefined when the path already ends in `/v1/`.
 */
function apiRootSuggestion(serverUrl: string): string | undefined {
  const url = new URL(serverUrl);
  if (url.pathname.endsWith('/v1/')) return undefined;
  const path = url.pathname.replace(/\/v2\/?$/, '/').replace(/\/?$/, '/');
  return `${url.origin}${path}v1/`;
}
