/**
 * A small OCI Distribution pull client on undici, for the kubelet: manifests by tag or digest
 * (Accept: OCI image manifest), blobs by digest, every byte checked against its digest. It
 * answers a registry's 401 challenge as OCI clients do: `Basic` with the configured credentials,
 * `Bearer realm=…,service=…,scope=…` by fetching a token from the realm (with the credentials,
 * when there are any; anonymously otherwise) and retrying; tokens are kept per scope. Redirects
 * (registries send blob GETs to their storage) are followed. Replies in the OCI error envelope
 * become BindleErrors with the registry's message.
 */
import { rename, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import type { Label } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { writeTempFile } from '../../core/fs-atomic.js';
import { OCI_MANIFEST_MEDIA_TYPE, isOciName, isSha256Digest, parseManifest, sha256Digest, type OciDescriptor, type OciManifest } from '../../core/oci/index.js';
import { descriptorLabel } from '../../core/oci/descriptor-label.js';
import { VERSION } from '../../core/version.js';
import { codeForStatus, isTransportFailure, ociEnvelopeMessage, transportError } from './http-errors.js';
import { ParcelDigestStream } from './parcel-digest.js';

/** Credentials for one registry (HTTP Basic; also what a token realm is sent). */
export interface RegistryCredentials {
  user: string;
  password: string;
}

export interface OciRegistryClientOptions {
  /** `host[:port]` of the registry. */
  registry: string;
  /** Plain HTTP instead of HTTPS (for a registry on a trusted network or loopback). */
  insecure?: boolean;
  credentials?: RegistryCredentials;
  /** Idle timeout for connecting, for the reply headers and between body chunks, in ms (default 30 000). */
  timeoutMs?: number;
  userAgent?: string;
}

/** A manifest as the registry served it: its exact bytes, their digest, and what they parse to. */
export interface PulledManifest {
  bytes: Buffer;
  digest: string;
  manifest: OciManifest;
}

/** Manifests and configs are small documents: larger ones are refused unread. */
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTIONS = 5;

type Challenge = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string; scope?: string };

/** Parses a `WWW-Authenticate` header: `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme === 'basic') return { scheme: 'basic' };
  if (scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    const key = p[1]?.toLowerCase();
    if (key !== undefined) params[key] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  if (params.realm === undefined || params.realm === '') return undefined;
  return {
    scheme: 'bearer',
    realm: params.realm,
    ...(params.service !== undefined ? { service: params.service } : {}),
    ...(params.scope !== undefined ? { scope: params.scope } : {}),
  };
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A pull client for one registry.
 *
 * Contracts:
 * - A manifest fetched by digest must hash to it; one fetched by tag must hash to the
 *   `Docker-Content-Digest` the registry sends (when it sends one), and its digest is computed.
 * - A blob is returned or written only when its size and sha256 match its descriptor
 *   (`size_mismatch` / `digest_mismatch`); only sha256 digests are accepted (`unsupported`).
 * - Errors: 401 after the challenge was answered → `unauthenticated`, 403 → `forbidden`, 404 →
 *   `not_found`, each naming the registry's reason; a connection failure is `unavailable`.
 */
export class OciRegistryClient {
  readonly registry: string;
  readonly origin: string;
  readonly timeoutMs: number;
  readonly #credentials: RegistryCredentials | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #agent: Agent;
  readonly #userAgent: string;
  /** Bearer tokens by scope (`repository:<name>:pull`). */
  readonly #tokens = new Map<string, string>();

  constructor(opts: OciRegistryClientOptions) {
    this.registry = opts.registry;
    this.origin = `${opts.insecure === true ? 'http' : 'https'}://${opts.registry}`;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.#credentials = opts.credentials;
    this.#userAgent = opts.userAgent ?? `bindle-ts/${VERSION}`;
    this.#agent = new Agent({ connect: { timeout: this.timeoutMs }, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    this.#dispatcher = this.#agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTIONS }));
  }

  /** Fetches a manifest by tag or `sha256:` digest (see the class contracts). */
  async getManifest(repository: string, reference: string): Promise<PulledManifest> {
    const doing = `fetching manifest ${this.registry}/${repository}${reference.includes(':') ? '@' : ':'}${reference}`;
    const reply = await this.#get(repository, `manifests/${reference}`, doing, OCI_MANIFEST_MEDIA_TYPE);
    const bytes = await readAll(reply.body, MAX_DOCUMENT_BYTES, doing);
    const digest = sha256Digest(bytes);
    const promised = isSha256Digest(reference) ? reference : headerValue(reply.headers, 'docker-content-digest');
    if (promised !== undefined && isSha256Digest(promised) && promised !== digest) {
      throw new BindleError('digest_mismatch', `${doing}: the manifest has the digest ${digest}, but the registry said ${promised}`);
    }
    return { bytes, digest, manifest: parseManifest(bytes, headerValue(reply.headers, 'content-type')) };
  }

  /** Fetches a small blob (a config) into memory, checked against `descriptor`. */
  async getBlob(repository: string, descriptor: OciDescriptor, what: string): Promise<Buffer> {
    const label = descriptorLabel(descriptor, what);
    if (descriptor.size > MAX_DOCUMENT_BYTES) {
      throw new BindleError('payload_too_large', `${what} is ${descriptor.size} bytes; at most ${MAX_DOCUMENT_BYTES} are read`);
    }
    const doing = `fetching ${what} from ${this.registry}/${repository}`;
    const reply = await this.#get(repository, `blobs/${descriptor.digest}`, doing, '*/*');
    const chunks: Buffer[] = [];
    for await (const chunk of this.#checked(reply, label, doing, `${this.origin}/v2/${repository}/blobs/${descriptor.digest}`)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Downloads the blob `label` names (`sha256:<label.sha256>`) to `destPath`, through a temp file
   * beside it that is renamed into place only when size and digest match; `mode` for the file.
   * Not fsynced: for a content-addressed cache that re-checks every file it uses.
   */
  async downloadBlob(repository: string, label: Label, destPath: string, mode: number): Promise<void> {
    const doing = `fetching blob sha256:${label.sha256} (${label.name}) from ${this.registry}/${repository}`;
    const reply = await this.#get(repository, `blobs/sha256:${label.sha256}`, doing, '*/*');
    const check = this.#checked(reply, label, doing, `${this.origin}/v2/${repository}/blobs/sha256:${label.sha256}`);
    const temp = await writeTempFile(destPath, check, mode, { sync: false });
    try {
      await rename(temp, destPath);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** The reply body through a digest check that fails instead of ending on wrong bytes. */
  #checked(reply: Dispatcher.ResponseData, label: Label, doing: string, url: string): ParcelDigestStream {
    const check = new ParcelDigestStream(label, doing, (err) => (isTransportFailure(err) ? transportError(doing, url, err, this.timeoutMs) : err));
    pipeline(reply.body, check, () => {
      // Errors reach the reader through `check`.
    });
    return check;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  /** GET `/v2/<repository>/<path>`, answering one auth challenge; any non-2xx after that throws. */
  async #get(repository: string, path: string, doing: string, accept: string): Promise<Dispatcher.ResponseData> {
    if (!isOciName(repository)) {
      throw new BindleError('invalid_name', `${doing}: ${JSON.stringify(repository)} is not an OCI repository name`);
    }
    const url = `${this.origin}/v2/${repository}/${path}`;
    const scope = `repository:${repository}:pull`;
    let res = await this.#send(url, doing, accept, this.#authorization(scope));
    if (res.statusCode === 401) {
      const challenge = parseChallenge(headerValue(res.headers, 'www-authenticate'));
      await res.body.dump();
      if (challenge !== undefined) {
        const authorization = await this.#answer(challenge, scope, doing);
        if (authorization !== undefined) res = await this.#send(url, doing, accept, authorization);
      }
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    const text = await res.body.text().catch(() => '');
    const reason = ociEnvelopeMessage(text) ?? `HTTP ${res.statusCode}`;
    const hint = res.statusCode === 401 ? (this.#credentials === undefined ? ' (no credentials are configured for this registry)' : ' (the credentials were refused)') : '';
    throw new BindleError(codeForStatus(res.statusCode), `${doing}: ${reason}${hint}`);
  }

  #authorization(scope: string): string | undefined {
    const token = this.#tokens.get(scope);
    if (token !== undefined) return `Bearer ${token}`;
    return undefined;
  }

  #basic(): string | undefined {
    const c = this.#credentials;
    return c === undefined ? undefined : `Basic ${Buffer.from(`${c.user}:${c.password}`, 'utf8').toString('base64')}`;
  }

  /** The Authorization header that answers `challenge`, or undefined when there is none to give. */
  async #answer(challenge: Challenge, scope: string, doing: string): Promise<string | undefined> {
    if (challenge.scheme === 'basic') return this.#basic();
    const url = new URL(challenge.realm);
    if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
    url.searchParams.set('scope', challenge.scope ?? scope);
    const res = await this.#send(url.toString(), `${doing}: getting a token from ${url.origin}`, 'application/json', this.#basic());
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw new BindleError(codeForStatus(res.statusCode), `${doing}: the token service ${url.origin}${url.pathname} answered HTTP ${res.statusCode}: ${ociEnvelopeMessage(text) ?? text.slice(0, 200)}`);
    }
    let token: unknown;
    try {
      const doc = JSON.parse(text) as { token?: unknown; access_token?: unknown };
      token = doc.token ?? doc.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || token === '') {
      throw new BindleError('unauthenticated', `${doing}: the token service ${url.origin}${url.pathname} sent no token`);
    }
    this.#tokens.set(scope, token);
    return `Bearer ${token}`;
  }

  async #send(url: string, doing: string, accept: string, authorization: string | undefined): Promise<Dispatcher.ResponseData> {
    try {
      return await request(url, {
        method: 'GET',
        headers: { accept, 'user-agent': this.#userAgent, ...(authorization === undefined ? {} : { authorization }) },
        dispatcher: this.#dispatcher,
      });
    } catch (err) {
      if (isTransportFailure(err)) throw transportError(doing, url, err, this.timeoutMs);
      throw new BindleError('unavailable', `${doing}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
}

async function readAll(body: Dispatcher.ResponseData['body'], limit: number, doing: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      body.destroy();
      throw new BindleError('payload_too_large', `${doing}: the reply is larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}
