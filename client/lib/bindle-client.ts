/**
 * The Bindle HTTP client (PROTOCOL.md §3, §7) on undici: one typed method per endpoint, errors
 * mapped to BindleErrors from the server's codes, every fetched invoice verified against a
 * keyring, every downloaded parcel re-hashed, streamed uploads and downloads, retries with
 * backoff on 5xx and connection failures, timeouts, and Basic or bearer credentials.
 */
import { rename, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { pipeline as pipelineCallback, type Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import type { HealthReply, Invoice, KeyRing, Label, ParcelBatchReply, QueryReply, SchemaName, SchemaTypes, SignatureRole } from '../../schema/index.js';
import { parseSyntax, validateDocument } from '../../core/codec/document-codec.js';
import { renderInvoice, toInvoice } from '../../core/codec/invoice-codec.js';
import { readAtMost } from '../../core/bounded-read.js';
import { formBody } from '../../core/codec/multipart-form.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { DirectorySync, writeTempFile } from '../../core/fs-atomic.js';
import { formatId, isSha256Hex, parseId, type BindleId } from '../../core/ids/bindle-id.js';
import type { Keyring } from '../../core/signing/keyring.js';
import { DEFAULT_STRATEGY, verifyInvoice, type VerificationStrategy } from '../../core/signing/verification.js';
import { VERSION } from '../../core/version.js';
import { waitBeforeRetry } from './backoff.js';
import { formatOfContentType, isTransportFailure, replyError, transportError } from './http-errors.js';
import { checkDigest, describeParcel, digestOf, ParcelDigestStream, sizeMismatch, SMALL_PARCEL_BYTES } from './parcel-digest.js';
import { parseDeviceAuthorization, type DeviceAuthorization } from './device-flow.js';

/** Credentials sent with every request: HTTP Basic, or a bearer token (e.g. an OIDC access token). */
export type Credentials = { kind: 'basic'; user: string; password: string } | { kind: 'bearer'; token: string };

/** How a BindleClient talks to its server. Invalid values are `invalid_config`. */
export interface ClientOptions {
  /** The API root, e.g. 'http://localhost:8080/v1/' (trailing slash optional). */
  baseUrl: string;
  credentials?: Credentials;
  /** When set, every fetched invoice is verified against it with `strategy` (see getInvoice). */
  keyring?: Keyring;
  /** Default DEFAULT_STRATEGY (GreedyVerification). */
  strategy?: VerificationStrategy;
  /** Idle timeout for connecting, for the reply headers and between body chunks, in ms (default 30 000). */
  timeoutMs?: number;
  /** Retries after a 5xx reply or a connection failure (default 5: the last 1.5–3.1 s after the first attempt), with exponential backoff and jitter from 100 ms; never after a 4xx. */
  retries?: number;
  /**
   * How many parcel transfers the workflows run at once (default 16); also the most connections
   * the client's own Agent opens to the server (more requests at once wait for a free one).
   */
  concurrency?: number;
  /** Default: an undici Agent owned by this client (closed by `close()`). A given dispatcher is never closed. */
  dispatcher?: Dispatcher;
  /** Default `bindle-ts/<version>`. */
  userAgent?: string;
}

/** The result of creating an invoice. */
export interface CreateInvoiceResult {
  /** The invoice as the server stored it (with its host signature). */
  invoice: Invoice;
  /** Labels of the parcels the server does not have yet (empty when it has them all). */
  missing: Label[];
  /** True when the server answered 201 (every parcel already present), false for 202 (some missing). */
  created: boolean;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * Retries by default: with the backoff's delays (client/lib/backoff.ts) the last comes 1.55–3.1 s
 * after the first attempt, past a server's restart (~0.4–0.55 s from SIGTERM to its first
 * /healthz on a loaded 2-core machine, plus a service manager's pause before the start). Three
 * (≤ 0.7 s) did not always outlast one.
 */
export const DEFAULT_RETRIES = 5;
export const DEFAULT_CONCURRENCY = 16;

const TOML_MEDIA_TYPE = 'application/toml';
const JSON_MEDIA_TYPE = 'application/json';
/** How much of an error body is read for its message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

type Method = 'GET' | 'HEAD' | 'POST' | 'DELETE';

interface SendOptions {
  method: Method;
  url: string;
  /** What is being done, for messages: `fetching invoice x/1.0.0`. */
  doing: string;
  accept?: string;
  /** A request body: bytes, or a factory that opens a fresh stream for each attempt. */
  body?: Buffer | (() => Readable);
  contentType?: string;
  contentLength?: number;
  /** Non-2xx statuses the caller handles itself (its reply is returned; the caller consumes the body). */
  handles?: readonly number[];
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Percent-encodes a path segment, keeping `+` (legal in a path, and in SemVer build metadata). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%2B/g, '+');
}

/** `name/version` as a URL path, each segment percent-encoded, `/` kept. */
function idPath(id: BindleId): string {
  return [...id.name.split('/'), id.version].map(encodeSegment).join('/');
}

function checkSha256(sha256: string): void {
  if (!isSha256Hex(sha256)) {
    throw new BindleError('invalid_id', `invalid parcel id ${JSON.stringify(sha256)}: expected 64 lowercase hex characters`);
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new BindleError('invalid_config', `client option ${name} must be an integer of at least ${min} (got ${String(value)})`);
  }
  return value;
}

function normalizeBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BindleError('invalid_config', `invalid server URL ${JSON.stringify(raw)}: expected e.g. http://localhost:8080/v1/`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BindleError('invalid_config', `invalid server URL ${JSON.stringify(raw)}: only http and https are supported`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new BindleError('invalid_config', `invalid server URL ${JSON.stringify(raw)}: pass credentials as options, not in the URL`);
  }
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url.toString();
}

/**
 * A client for one Bindle server.
 *
 * Contracts:
 * - Ids are `name/version` strings, checked with parseId before any request (`invalid_id`,
 *   `invalid_name`, `invalid_version`); path segments are percent-encoded.
 * - Every non-2xx reply is a BindleError: the reply's `code` when it is a known one, else one
 *   derived from the status; the message is what was being done, then the server's `error` text
 *   (for a reply that is not a Bindle error document, e.g. an OCI error envelope or an HTML page:
 *   the URL, the status and the reply's useful part, see replyError).
 *   A connection failure or timeout is `unavailable` naming the URL.
 * - 5xx replies and connection failures are retried `retries` times with backoff (uploads reopen
 *   their data through the factory); 4xx replies never are.
 */
export class BindleClient {
  readonly baseUrl: string;
  readonly keyring: Keyring | undefined;
  readonly strategy: VerificationStrategy;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly concurrency: number;
  readonly userAgent: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #authorization: string | undefined;
  /** The id parsed last, its text and URL path: a push or get names one id per parcel request. */
  #lastId: { text: string; bid: BindleId; path: string } | undefined;
  #closed = false;

  constructor(opts: ClientOptions) {
    this.baseUrl = normalizeBaseUrl(opts.baseUrl);
    this.keyring = opts.keyring;
    this.strategy = opts.strategy ?? DEFAULT_STRATEGY;
    this.timeoutMs = positiveInteger('timeoutMs', opts.timeoutMs, DEFAULT_TIMEOUT_MS, 1);
    this.retries = positiveInteger('retries', opts.retries, DEFAULT_RETRIES, 0);
    this.concurrency = positiveInteger('concurrency', opts.concurrency, DEFAULT_CONCURRENCY, 1);
    this.userAgent = opts.userAgent ?? `bindle-ts/${VERSION}`;
    this.#ownsDispatcher = opts.dispatcher === undefined;
    // Capped at the transfers run at once: uncapped, undici opened a new connection whenever a
    // request came while every connection still counted as busy with its last reply, 31 in all
    // for a push of 1000 parcels at concurrency 16 (each one more accept for the server).
    this.#dispatcher =
      opts.dispatcher ??
      new Agent({
        connect: { timeout: this.timeoutMs },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        connections: this.concurrency,
      });
    const creds = opts.credentials;
    if (creds?.kind === 'basic') {
      if (creds.user.includes(':')) throw new BindleError('invalid_config', 'a Basic auth user name must not contain ":"');
      this.#authorization = `Basic ${Buffer.from(`${creds.user}:${creds.password}`, 'utf8').toString('base64')}`;
    } else if (creds?.kind === 'bearer') {
      this.#authorization = `Bearer ${creds.token.trim()}`;
    }
  }

  /**
   * Creates an invoice. 409 → `already_exists`, 422 → `yanked_create`, 400 → the server's reason.
   * Sent as JSON, which the protocol accepts beside TOML (PROTOCOL.md §3) and a server parses far
   * faster: a 1000-parcel invoice took the server ~0.25 s to parse as TOML.
   */
  async createInvoice(invoice: Invoice): Promise<CreateInvoiceResult> {
    const doing = `creating invoice ${invoice.bindle.name}/${invoice.bindle.version}`;
    const reply = await this.#send({
      method: 'POST',
      url: this.#url('_i'),
      doing,
      body: Buffer.from(renderInvoice(invoice, 'json'), 'utf8'),
      contentType: JSON_MEDIA_TYPE,
      // Only the data of the reply is used, not its bytes: JSON, which parses far faster than
      // TOML (the reply repeats the invoice and lists the missing parcels: large for big bindles).
      accept: JSON_MEDIA_TYPE,
    });
    const doc = await this.#readDocument(reply, 'InvoiceCreateReply', doing);
    return { invoice: doc.invoice, missing: doc.missing ?? [], created: reply.status === 201 };
  }

  /**
   * Fetches an invoice. A yanked invoice is `yanked` (403) unless `yanked: true`. When `verify`
   * (default: whether a keyring is set) the invoice must be the one asked for and pass the
   * keyring with the client's strategy, or the call fails with the verification's code.
   */
  async getInvoice(id: string, opts: { yanked?: boolean; verify?: boolean } = {}): Promise<Invoice> {
    // Asked for in JSON: only the data is used, and JSON parses far faster than TOML (~0.2 s
    // for a 1000-parcel invoice). A server that answers TOML anyway is understood too.
    return (await this.#fetchInvoice(id, opts, JSON_MEDIA_TYPE)).invoice;
  }

  /**
   * Like getInvoice (same checks), and also the exact bytes of the server's reply (TOML): what
   * the server stores and serves, e.g. the config blob of the bindle's OCI manifest.
   */
  async getInvoiceBytes(id: string, opts: { yanked?: boolean; verify?: boolean } = {}): Promise<{ invoice: Invoice; bytes: Buffer }> {
    return this.#fetchInvoice(id, opts, TOML_MEDIA_TYPE);
  }

  async #fetchInvoice(id: string, opts: { yanked?: boolean; verify?: boolean }, accept: string): Promise<{ invoice: Invoice; bytes: Buffer }> {
    const bid = parseId(id);
    const doing = `fetching invoice ${formatId(bid)}`;
    const reply = await this.#send({ method: 'GET', url: this.#url(`_i/${idPath(bid)}`, yankedQuery(opts.yanked)), doing, accept });
    const bytes = Buffer.from(await reply.body.arrayBuffer());
    const text = bytes.toString('utf8');
    let invoice: Invoice;
    try {
      invoice = toInvoice(parseSyntax(text, formatOfContentType(headerValue(reply.headers, 'content-type'))));
    } catch (err) {
      throw rewrap(err, `${doing}: the server's reply is not a valid invoice`);
    }
    if (invoice.bindle.name !== bid.name || invoice.bindle.version !== bid.version) {
      throw new BindleError(
        'unverified',
        `${doing}: the server answered with invoice ${invoice.bindle.name}/${invoice.bindle.version} instead`,
      );
    }
    const verify = opts.verify ?? this.keyring !== undefined;
    if (verify) {
      if (this.keyring === undefined) {
        throw new BindleError('invalid_config', `${doing}: cannot verify it: this client has no keyring`);
      }
      try {
        verifyInvoice(invoice, this.keyring, this.strategy);
      } catch (err) {
        throw rewrap(err, `${doing}: it failed verification`);
      }
    }
    return { invoice, bytes };
  }

  /** True when the invoice exists, yanked or not (HEAD); false on 404. */
  async invoiceExists(id: string): Promise<boolean> {
    const bid = parseId(id);
    const reply = await this.#send({
      method: 'HEAD',
      url: this.#url(`_i/${idPath(bid)}`, yankedQuery(true)),
      doing: `checking for invoice ${formatId(bid)}`,
      handles: [404],
    });
    await settle(reply.body);
    return reply.status !== 404;
  }

  /** Yanks an invoice (idempotent). */
  async yankInvoice(id: string): Promise<void> {
    const bid = parseId(id);
    const reply = await this.#send({ method: 'DELETE', url: this.#url(`_i/${idPath(bid)}`), doing: `yanking invoice ${formatId(bid)}` });
    await settle(reply.body);
  }

  /**
   * Hard-deletes an invoice (needs the admin grant): the server removes it and keeps a signed
   * tombstone, so the id cannot be created again unless an admin allows it. 410 → `deleted`
   * (already deleted), 403 → `forbidden`.
   */
  async deleteInvoice(id: string, opts: { reason?: string } = {}): Promise<void> {
    const bid = parseId(id);
    const params = new URLSearchParams({ hard: 'true', ...(opts.reason === undefined ? {} : { reason: opts.reason }) });
    const reply = await this.#send({ method: 'DELETE', url: this.#url(`_i/${idPath(bid)}`, params), doing: `deleting invoice ${formatId(bid)}` });
    await settle(reply.body);
  }

  /**
   * Uploads a parcel listed on the invoice `id`. `data` is the bytes (checked against the label
   * before sending) or a factory that opens a stream of them (called again for each retry); the
   * upload is streamed with Content-Length = `label.size`. Returns 'exists' when the server
   * already has it (409).
   */
  async createParcel(id: string, label: Label, data: Buffer | (() => Readable)): Promise<'created' | 'exists'> {
    const { bid, path } = this.#idOf(id);
    checkSha256(label.sha256);
    const doing = `uploading ${describeParcel(label)} of ${formatId(bid)}`;
    if (Buffer.isBuffer(data)) checkDigest(digestOf(data), label, `${doing}: the data to upload`);
    const reply = await this.#send({
      method: 'POST',
      url: this.#url(`_i/${path}@${label.sha256}`),
      doing,
      body: data,
      contentType: 'application/octet-stream',
      contentLength: Buffer.isBuffer(data) ? data.length : label.size,
      handles: [409],
    });
    await settle(reply.body);
    return reply.status === 409 ? 'exists' : 'created';
  }

  /**
   * Uploads several parcels listed on the invoice `id` in one request: a multipart/form-data POST
   * to the invoice's path, one part per parcel named by its sha256 (an extension this server
   * takes; see its API description). Each parcel's bytes are checked against its label before
   * anything is sent. Resolves with the server's reply: the sha256 of the parcels it stored
   * (`created`) and of those it already had (`existing`). Resolves with undefined when the
   * server does not take batches (it answers 404, 405, 415 or 501, as a reference server does)
   * or a proxy in front of it refuses the body's size (413), for the caller to upload them one by
   * one (createParcel); a 404 may also mean that there is no such invoice, and a 413 a parcel over
   * the server's limit, which the single uploads then report.
   */
  async createParcels(id: string, parcels: ReadonlyArray<{ readonly label: Label; readonly data: Buffer }>): Promise<ParcelBatchReply | undefined> {
    const { bid, path } = this.#idOf(id);
    const doing = `uploading ${parcels.length} parcel(s) of ${formatId(bid)}`;
    for (const { label, data } of parcels) {
      checkSha256(label.sha256);
      checkDigest(digestOf(data), label, `${doing}: the data of ${describeParcel(label)}`);
    }
    const { body, contentType } = formBody(parcels.map(({ label, data }) => ({ name: label.sha256, filename: label.sha256, mediaType: 'application/octet-stream', data })));
    const reply = await this.#send({
      method: 'POST',
      url: this.#url(`_i/${path}`),
      doing,
      body,
      contentType,
      contentLength: body.length,
      accept: JSON_MEDIA_TYPE,
      handles: BATCH_REFUSED,
    });
    if (BATCH_REFUSED.includes(reply.status)) {
      await settle(reply.body);
      return undefined;
    }
    return this.#readDocument(reply, 'ParcelBatchReply', doing);
  }

  /**
   * Downloads a parcel as a stream. The stream re-hashes the bytes and, instead of ending,
   * errors with `size_mismatch` or `digest_mismatch` when they do not match `label`; a transfer
   * cut short errors with `unavailable`.
   */
  async getParcel(id: string, label: Label, opts: { yanked?: boolean } = {}): Promise<Readable> {
    const { reply, what, doing, url } = await this.#requestParcel(id, label, opts);
    const verifier = new ParcelDigestStream(label, what, (err) =>
      isTransportFailure(err) ? transportError(doing, url, err, this.timeoutMs) : err,
    );
    pipelineCallback(reply.body, verifier, () => {
      // Errors reach the consumer through `verifier`.
    });
    return verifier;
  }

  /**
   * Downloads a verified parcel to `destPath` atomically: into a temp file beside it, renamed
   * into place only when size and digest match. Nothing is left behind on any error. A transfer
   * cut short is retried like a failed request. `onProgress` gets the bytes received so far.
   * The file gets `mode` (default 0644). Unless `durable` is false the file and the rename are
   * fsynced; only a caller that re-checks the file on every use (a content-addressed cache that
   * re-hashes it) should pass false, since a crash may then leave a torn file at `destPath`.
   * `directorySync`, the group commit of `destPath`'s directory, lets concurrent downloads into
   * that directory share the fsyncs that make their renames durable.
   */
  async downloadParcel(
    id: string,
    label: Label,
    destPath: string,
    opts: { yanked?: boolean; onProgress?: (bytes: number) => void; mode?: number; durable?: boolean; directorySync?: DirectorySync } = {},
  ): Promise<void> {
    const { directorySync } = opts;
    if (directorySync !== undefined && resolve(directorySync.dir) !== resolve(dirname(destPath))) {
      throw new BindleError('internal', `downloading to ${destPath}: the directory sync given is for another directory, ${directorySync.dir}`);
    }
    const durable = opts.durable === false ? undefined : (directorySync ?? new DirectorySync(dirname(destPath)));
    const yanked = opts.yanked === undefined ? {} : { yanked: opts.yanked };
    for (let attempt = 0; ; attempt++) {
      try {
        if (label.size <= SMALL_PARCEL_BYTES) {
          const data = await this.#getSmallParcel(id, label, yanked);
          await writeAtomic(data, destPath, { mode: opts.mode ?? 0o644, durable });
          opts.onProgress?.(data.length);
        } else {
          const stream = await this.getParcel(id, label, yanked);
          await writeAtomic(stream, destPath, { mode: opts.mode ?? 0o644, durable, onProgress: opts.onProgress });
        }
        return;
      } catch (err) {
        const interrupted = isBindleError(err, 'unavailable') && isTransportFailure(err.cause);
        if (!interrupted || attempt >= this.retries) throw err;
        await waitBeforeRetry(attempt);
      }
    }
  }

  /**
   * Downloads several parcels of the invoice `id` in one request, a GET of the invoice's path with
   * `?parcels=<sha256>,…` (an extension this server takes; see its API description), and writes
   * each into the directory of `into.directorySync`, named `into.fileName(label)`, as
   * downloadParcel does: checked against its label, through a temp file renamed into place,
   * durably through that directory's group commit. Meant for small parcels (SMALL_PARCEL_BYTES:
   * each is held in memory); the server takes up to 200 in one request. `onStored` is told each
   * label once its file is in place.
   *
   * Resolves with false, having stored nothing, when the server answers anything but a
   * multipart/form-data 200 (a reference server answers the invoice itself, an older one 400,
   * others 405 or 501), for the caller to download the parcels one by one; with true once the
   * reply is read and every file written. A parcel the reply leaves out is not stored (see
   * `onStored`). A part that was not asked for or comes twice, or bytes that do not match the
   * label, fail it with the error a single download would give (`size_mismatch`,
   * `digest_mismatch`), as do the request's own errors; parcels already stored stay stored.
   */
  async downloadParcels(
    id: string,
    labels: readonly Label[],
    into: { directorySync: DirectorySync; fileName: (label: Label) => string },
    opts: { yanked?: boolean; onStored?: (label: Label) => void } = {},
  ): Promise<boolean> {
    const { bid, path } = this.#idOf(id);
    const wanted = new Map<string, Label>();
    for (const label of labels) {
      checkSha256(label.sha256);
      wanted.set(label.sha256, label);
    }
    const durable = into.directorySync;
    const doing = `downloading ${wanted.size} parcel(s) of ${formatId(bid)}`;
    // Digests need no encoding, and commas are kept as they are: the list is in the URL.
    const query = `parcels=${[...wanted.keys()].join(',')}${opts.yanked === true ? '&yanked=true' : ''}`;
    const url = `${this.#url(`_i/${path}`)}?${query}`;
    const reply = await this.#send({ method: 'GET', url, doing, accept: 'multipart/form-data', handles: BATCH_DOWNLOAD_REFUSED });
    const contentType = headerValue(reply.headers, 'content-type');
    if (reply.status !== 200 || contentType === undefined || !/^multipart\/form-data\s*;/i.test(contentType)) {
      await settle(reply.body);
      return false;
    }
    const { readFormParts } = await import('./form-parts.js');
    /** Each part's check and write; each settles without rejecting, its failure kept in `failure`. */
    const writes: Array<Promise<void>> = [];
    let failure: Error | undefined;
    // A transfer cut short reaches both the part being read and the reading of the body: either way it is `unavailable`.
    const keep = (err: unknown): void => {
      const mapped = isTransportFailure(err) ? transportError(doing, url, err, this.timeoutMs) : err;
      failure ??= mapped instanceof Error ? mapped : new Error(String(mapped));
    };
    const store = async (label: Label, data: Readable): Promise<void> => {
      const what = `${describeParcel(label)} of ${formatId(bid)}`;
      try {
        const bytes = await readUpTo(data, label.size, () => sizeMismatch(what, `more than ${label.size} bytes`, label.size));
        checkDigest(digestOf(bytes), label, what);
        await writeAtomic(bytes, join(durable.dir, into.fileName(label)), { mode: 0o644, durable });
        opts.onStored?.(label);
      } catch (err) {
        keep(err);
      }
    };
    try {
      await readFormParts(reply.body, contentType, wanted.size, doing, (name, data) => {
        const label = wanted.get(name);
        wanted.delete(name);
        if (label === undefined) {
          data.resume();
          keep(new BindleError('malformed_body', `${doing}: the server sent a part named ${JSON.stringify(name.slice(0, 80))}, which was not asked for or came twice`));
          return;
        }
        writes.push(store(label, data));
      });
    } catch (err) {
      keep(err);
    }
    await Promise.all(writes);
    if (failure !== undefined) throw failure;
    return true;
  }

  /**
   * Downloads a small parcel (SMALL_PARCEL_BYTES at most) into memory and checks it like
   * getParcel's stream does: more bytes than its label's size fail as soon as they arrive.
   */
  async #getSmallParcel(id: string, label: Label, opts: { yanked?: boolean }): Promise<Buffer> {
    const { reply, what, doing, url } = await this.#requestParcel(id, label, opts);
    let data: Buffer;
    try {
      data = await readUpTo(reply.body, label.size, () => sizeMismatch(what, `more than ${label.size} bytes`, label.size));
    } catch (err) {
      throw isTransportFailure(err) ? transportError(doing, url, err, this.timeoutMs) : err;
    }
    checkDigest(digestOf(data), label, what);
    return data;
  }

  /** GETs a parcel: its reply, once its Content-Length (when sent) is the label's size, and how messages name it. */
  async #requestParcel(id: string, label: Label, opts: { yanked?: boolean }): Promise<{ reply: Reply; what: string; doing: string; url: string }> {
    const { bid, path } = this.#idOf(id);
    checkSha256(label.sha256);
    const what = `${describeParcel(label)} of ${formatId(bid)}`;
    const doing = `downloading ${what}`;
    const url = this.#url(`_i/${path}@${label.sha256}`, yankedQuery(opts.yanked));
    const reply = await this.#send({ method: 'GET', url, doing, accept: '*/*' });
    const length = headerValue(reply.headers, 'content-length');
    if (length !== undefined && Number(length) !== label.size) {
      discard(reply.body);
      throw sizeMismatch(what, `a Content-Length of ${length}`, label.size);
    }
    return { reply, what, doing, url };
  }

  /** True when the server has the parcel for this invoice (HEAD); false on 404. */
  async parcelExists(id: string, sha256: string): Promise<boolean> {
    const bid = parseId(id);
    checkSha256(sha256);
    const reply = await this.#send({
      method: 'HEAD',
      url: this.#url(`_i/${idPath(bid)}@${sha256}`),
      doing: `checking for parcel ${sha256} of ${formatId(bid)}`,
      accept: '*/*',
      handles: [404],
    });
    await settle(reply.body);
    return reply.status !== 404;
  }

  /** Labels of the invoice's parcels the server does not have yet. */
  async getMissingParcels(id: string): Promise<Label[]> {
    const bid = parseId(id);
    const doing = `listing the missing parcels of ${formatId(bid)}`;
    const reply = await this.#send({ method: 'GET', url: this.#url(`_r/missing/${idPath(bid)}`), doing, accept: JSON_MEDIA_TYPE });
    return (await this.#readDocument(reply, 'MissingReply', doing)).missing;
  }

  /** Searches invoices (`/_q`, PROTOCOL.md §4). Listed invoices are not verified. */
  async query(
    opts: { query?: string; version?: string; offset?: number; limit?: number; strict?: boolean; yanked?: boolean } = {},
  ): Promise<QueryReply> {
    const params = new URLSearchParams();
    if (opts.query !== undefined) params.set('q', opts.query);
    if (opts.version !== undefined) params.set('v', opts.version);
    if (opts.offset !== undefined) params.set('o', String(opts.offset));
    if (opts.limit !== undefined) params.set('l', String(opts.limit));
    if (opts.strict !== undefined) params.set('strict', String(opts.strict));
    if (opts.yanked !== undefined) params.set('yanked', String(opts.yanked));
    const doing = 'querying invoices';
    const reply = await this.#send({ method: 'GET', url: this.#url('_q', params), doing });
    return this.#readDocument(reply, 'QueryReply', doing);
  }

  /** The server's host public keys (`/bindle-keys`), optionally only those with one of `roles`. */
  async getHostKeys(roles?: SignatureRole[]): Promise<KeyRing> {
    const params = new URLSearchParams();
    if (roles !== undefined && roles.length > 0) params.set('roles', roles.join(','));
    const doing = 'fetching the server keys';
    const reply = await this.#send({ method: 'GET', url: this.#url('bindle-keys', params), doing });
    return this.#readDocument(reply, 'KeyRing', doing);
  }

  /** The server's health (`GET <origin>/healthz`): 503 while it shuts down is `unavailable`. */
  async health(): Promise<HealthReply> {
    const doing = 'checking server health';
    const url = new URL('/healthz', this.baseUrl).toString();
    const reply = await this.#send({ method: 'GET', url, doing, accept: JSON_MEDIA_TYPE });
    return this.#readDocument(reply, 'HealthReply', doing);
  }

  /**
   * Starts a device login (`GET login?provider=…`, present only on servers with OIDC): the
   * provider's device code, user code and verification URL, plus the client id and token URL to
   * poll (see device-flow.ts).
   */
  async startLogin(provider: string): Promise<DeviceAuthorization> {
    const doing = 'starting the login';
    const reply = await this.#send({ method: 'GET', url: this.#url('login', new URLSearchParams({ provider })), doing, accept: JSON_MEDIA_TYPE });
    const text = await reply.body.text();
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw rewrap(err, `${doing}: the server's reply is not understood`);
    }
    return parseDeviceAuthorization(doc);
  }

  /** Closes the client's own connection pool (a dispatcher passed in options is left open). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  /** parseId of `id` (throwing as it does) and its URL path; the last id's are reused (idPath cost ~20 µs per request). */
  #idOf(id: string): { bid: BindleId; path: string } {
    if (this.#lastId?.text !== id) {
      const bid = parseId(id);
      this.#lastId = { text: id, bid, path: idPath(bid) };
    }
    return this.#lastId;
  }

  #url(path: string, params?: URLSearchParams): string {
    const query = params === undefined || params.size === 0 ? '' : `?${params.toString()}`;
    return `${this.baseUrl}${path}${query}`;
  }

  async #readDocument<N extends SchemaName>(reply: Reply, name: N, doing: string): Promise<SchemaTypes[N]> {
    const text = await reply.body.text();
    try {
      return validateDocument(name, parseSyntax(text, formatOfContentType(headerValue(reply.headers, 'content-type'))), 'malformed_body', 'reply');
    } catch (err) {
      throw rewrap(err, `${doing}: the server's reply is not understood`);
    }
  }

  /** Sends a request, retrying 5xx replies and transport failures; any other non-2xx reply (unless handled) throws. */
  async #send(opts: SendOptions): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.#attempt(opts);
      if (outcome.kind === 'reply') return outcome.reply;
      if (!outcome.retryable || attempt >= this.retries) throw outcome.error;
      await waitBeforeRetry(attempt, outcome.retryAfter);
    }
  }

  async #attempt(
    opts: SendOptions,
  ): Promise<{ kind: 'reply'; reply: Reply } | { kind: 'error'; error: BindleError; retryable: boolean; retryAfter?: string }> {
    if (this.#closed) throw new BindleError('unavailable', `${opts.doing}: the client has been closed`);
    const headers: Record<string, string> = {
      accept: opts.accept ?? TOML_MEDIA_TYPE,
      'user-agent': this.userAgent,
    };
    if (this.#authorization !== undefined) headers.authorization = this.#authorization;
    if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
    if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
    let sourceError: unknown;
    let body: Buffer | Readable | undefined;
    if (typeof opts.body === 'function') {
      try {
        body = opts.body();
      } catch (err) {
        throw sourceFailure(opts.doing, err);
      }
      body.once('error', (err) => {
        sourceError ??= err;
      });
    } else {
      body = opts.body;
    }
    let res: Dispatcher.ResponseData;
    try {
      // The dispatcher's own request API, not undici's top-level request(): the same call once the
      // URL is split, without the package index behind it (see scripts/bundle-client.mjs).
      const target = new URL(opts.url);
      res = await this.#dispatcher.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: opts.method,
        headers,
        body: body ?? null,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      // undici destroys a stream body with the connection's error when the connection fails
      // (a server killed mid-upload): that error is the transport's, retried below, not the source's.
      if (sourceError !== undefined && !isTransportFailure(sourceError)) throw sourceFailure(opts.doing, sourceError);
      if (errorCode(err) === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
        throw new BindleError('size_mismatch', `${opts.doing}: the data to upload is not the ${String(opts.contentLength)} bytes its label says`, { cause: err });
      }
      if (isBindleError(err)) throw err;
      const error = transportError(opts.doing, opts.url, err, this.timeoutMs);
      return { kind: 'error', error, retryable: isTransportFailure(err) };
    } finally {
      if (body !== undefined && !Buffer.isBuffer(body) && !body.destroyed && sourceError === undefined) {
        // A body the request did not consume (an early reply) must not keep its file open.
        body.destroy();
      }
    }
    const status = res.statusCode;
    if ((status >= 200 && status < 300) || opts.handles?.includes(status)) {
      return { kind: 'reply', reply: { status, headers: res.headers, body: res.body } };
    }
    const contentType = headerValue(res.headers, 'content-type');
    // The message is best effort: a body cut short leaves the status alone, which still makes a precise error.
    const text = opts.method === 'HEAD' ? '' : await readUpTo(res.body, MAX_ERROR_BODY_BYTES, 'cut').then((b) => b.toString('utf8'), () => '');
    if (status >= 300 && status < 400) {
      const location = headerValue(res.headers, 'location');
      const error = new BindleError(
        'bad_request',
        `${opts.doing}: the server answered HTTP ${status}${location === undefined ? '' : ` redirecting to ${location}`}; use the final address as the server URL`,
      );
      return { kind: 'error', error, retryable: false };
    }
    const error = replyError(opts.doing, status, text, contentType, opts.url);
    const retryAfter = headerValue(res.headers, 'retry-after');
    return { kind: 'error', error, retryable: status >= 500, ...(retryAfter !== undefined ? { retryAfter } : {}) };
  }
}

function yankedQuery(yanked: boolean | undefined): URLSearchParams | undefined {
  return yanked === true ? new URLSearchParams({ yanked: 'true' }) : undefined;
}

function errorCode(err: unknown): string | undefined {
  const code = err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** An error reading the data being uploaded (not the server's fault, never retried). */
function sourceFailure(doing: string, err: unknown): BindleError {
  if (isBindleError(err)) return err;
  const code = errorCode(err) === 'ENOENT' ? 'not_found' : 'internal';
  return new BindleError(code, `${doing}: reading the data to upload failed: ${errorMessage(err)}`, { cause: err });
}

/** A BindleError with `prefix` before the original message (same code); other errors become `malformed_body`. */
function rewrap(err: unknown, prefix: string): BindleError {
  if (isBindleError(err)) return new BindleError(err.code, `${prefix}: ${err.message}`, { cause: err });
  return new BindleError('malformed_body', `${prefix}: ${errorMessage(err)}`, { cause: err });
}

/**
 * Reads and drops the rest of a reply whose status already decided the outcome. A body cut
 * short at this point (e.g. an upload refused early) changes nothing, so its error is ignored.
 */
async function settle(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump();
  } catch {
    // The status is the answer; the rest of the body carries nothing we need.
  }
}

/** Drops a reply body that will not be read (undici reports the abort as an error: it is expected). */
function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * `body` in one Buffer, at most `limit` bytes of it. Once it sends more, it is dropped and
 * `beyond` decides: 'cut' keeps the first `limit` bytes, a function gives the error to throw.
 * Errors of the body (a transfer cut short) are thrown as they are.
 */
async function readUpTo(body: Readable, limit: number, beyond: 'cut' | (() => Error)): Promise<Buffer> {
  try {
    const read = await readAtMost(body, limit);
    if (read.over && beyond !== 'cut') throw beyond();
    return read.bytes;
  } finally {
    if (!body.readableEnded) discard(body);
  }
}

/** Passes `source` through, reporting the bytes seen so far after each chunk. */
async function* counting(source: AsyncIterable<Buffer>, onProgress: (bytes: number) => void): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of source) {
    bytes += chunk.length;
    onProgress(bytes);
    yield chunk;
  }
}

/**
 * Writes bytes or a stream to `target` through a temp file beside it (core's writer, which
 * batches a stream's chunks), renamed into place; when `durable` (the group commit of the
 * target's directory) is given the file is fsynced and the rename made durable through it.
 * Removes the temp file on any error. `onProgress` follows a stream's bytes.
 */
async function writeAtomic(
  data: Buffer | Readable,
  target: string,
  opts: { mode: number; durable: DirectorySync | undefined; onProgress?: ((bytes: number) => void) | undefined },
): Promise<void> {
  const source: Buffer | AsyncIterable<Buffer> = Buffer.isBuffer(data) || opts.onProgress === undefined ? data : counting(data, opts.onProgress);
  let temp: string;
  try {
    temp = await writeTempFile(target, source, opts.mode, { sync: opts.durable !== undefined });
  } catch (err) {
    if (!Buffer.isBuffer(data)) data.destroy();
    throw err;
  }
  try {
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await opts.durable?.sync();
}

/**
 * Statuses by which a server takes no batch download (downloadParcels): an older one of ours
 * refuses the query parameter (400), others the method or the feature.
 */
const BATCH_DOWNLOAD_REFUSED: readonly number[] = [400, 405, 501];

/** Statuses by which a server (or a proxy, 413: its body limit) takes no batch of parcels (createParcels). */
const BATCH_REFUSED: readonly number[] = [404, 405, 413, 415, 501];
