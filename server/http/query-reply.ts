/**
 * The `/_q` reply: the page's fields, then each invoice as a rendered fragment — in TOML its
 * `[[invoices]]` table, in JSON its stored JSON text — sent as a stream of those pieces with a
 * Content-Length. Fragments come from a bounded cache keyed by canonical id and checked
 * against the stored JSON text (the index's record: a yank rewrites it), so a fragment of a
 * document that is no longer the stored one is never sent, and every replica renders the same
 * bytes. Fragments missing from the cache are rendered in a queue shared by all requests that
 * works in short slices of the event loop, and reading a page from the index and rendering it
 * wait for their turn in an admission gate (./admission-gate.ts) that starts one per turn of the
 * loop and lets clients (by address) take turns, so neither one big reply nor many at once hold
 * up other requests, nor one client's many queries another client's query (a `_q` page of 50
 * invoices of 300 parcels is about 2.6 MiB). Streaming a reply follows the socket's backpressure:
 * its pieces are the cached fragments themselves, not copies.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DocumentFormat } from '../../core/codec/document-codec.js';
import { tomlDocumentParts, writeTomlTableArrayItem } from '../../core/codec/toml-writer.js';
import type { QueryReply } from '../../schema/index.js';
import type { StoredInvoice } from '../storage/invoice-index.js';
import { AdmissionGate, AdmissionSkipped } from './admission-gate.js';
import { CONTENT_TYPE, replyFormat } from './negotiation.js';

/** A page of `/_q`: the reply's fields, and the stored invoices of the page. */
export type QueryPage = Omit<QueryReply, 'invoices'> & { invoices: readonly StoredInvoice[] };

/** Bytes of rendered TOML fragments the cache keeps (least recently used go first). */
export const FRAGMENT_CACHE_BYTES = 16 * 2 ** 20;
/** Replies up to this size are sent as one buffer, larger ones streamed piece by piece. */
const SINGLE_WRITE_BYTES = 256 * 1024;
/** Longest stretch (ms) the render queue works before it lets the event loop turn. */
export const RENDER_SLICE_MS = 4;

/**
 * Runs synchronous jobs in FIFO order, in slices of about RENDER_SLICE_MS started from
 * setImmediate: however many requests queue work, other callbacks run between slices.
 */
export class SlicedQueue {
  readonly #sliceMs: number;
  readonly #jobs: Array<() => void> = [];
  #scheduled = false;

  constructor(sliceMs = RENDER_SLICE_MS) {
    this.#sliceMs = sliceMs;
  }

  /** Resolves with what `job` returns (rejects with what it throws) once its turn came. */
  run<T>(job: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push(() => {
        try {
          resolve(job());
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#drain());
  }

  #drain(): void {
    this.#scheduled = false;
    const started = performance.now();
    for (let job = this.#jobs.shift(); job !== undefined; job = this.#jobs.shift()) {
      job();
      if (performance.now() - started >= this.#sliceMs) break;
    }
    if (this.#jobs.length > 0) this.#schedule();
  }
}

/**
 * TOML fragments of stored invoices, least recently used first, at most `maxBytes` of them.
 * An entry serves only the stored document it was rendered from (same JSON text).
 */
export class FragmentCache {
  readonly #maxBytes: number;
  readonly #entries = new Map<string, { json: string; toml: Buffer }>();
  #bytes = 0;

  constructor(maxBytes = FRAGMENT_CACHE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The fragment rendered from exactly this stored document, if cached. */
  get(stored: StoredInvoice): Buffer | undefined {
    const entry = this.#entries.get(stored.canonicalId);
    if (entry === undefined) return undefined;
    if (entry.json !== stored.json) {
      this.#delete(stored.canonicalId);
      return undefined;
    }
    this.#entries.delete(stored.canonicalId);
    this.#entries.set(stored.canonicalId, entry);
    return entry.toml;
  }

  set(stored: StoredInvoice, toml: Buffer): void {
    this.#delete(stored.canonicalId);
    if (toml.length > this.#maxBytes) return;
    this.#entries.set(stored.canonicalId, { json: stored.json, toml });
    this.#bytes += toml.length;
    for (const [id] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#delete(id);
    }
  }

  #delete(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    this.#bytes -= entry.toml.length;
  }
}

/** Renders `/_q` pages; one per server (its cache and queue are shared by all requests). */
export class QueryReplies {
  readonly #cache: FragmentCache;
  readonly #queue: SlicedQueue;
  readonly #gate: AdmissionGate;
  /** Renders queued or under way, by canonical id: concurrent replies of one page share them. */
  readonly #rendering = new Map<string, { json: string; toml: Promise<Buffer> }>();

  constructor(cache = new FragmentCache(), queue = new SlicedQueue(), gate = new AdmissionGate()) {
    this.#cache = cache;
    this.#queue = queue;
    this.#gate = gate;
  }

  /** The bytes of the reply, in pieces; equal to renderDocument(reply with parsed invoices, format). */
  async render(page: QueryPage, format: DocumentFormat): Promise<Buffer[]> {
    const { invoices, ...head } = page;
    if (format === 'json') {
      const fields = JSON.stringify(head);
      // The stored JSON is a JSON rendering of the invoice, sent as it is.
      const parts = [`${fields.slice(0, -1)}${fields === '{}' ? '' : ','}"invoices":[`];
      invoices.forEach((stored, i) => parts.push(i === 0 ? stored.json : `,${stored.json}`));
      parts.push(']}');
      return parts.map((part) => Buffer.from(part, 'utf8'));
    }
    // Every missing fragment is queued at once: small ones render together in one slice.
    const fragments = await Promise.all(invoices.map(async (stored) => this.#cache.get(stored) ?? this.#fragment(stored)));
    return tomlDocumentParts(head, 'invoices', fragments).map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part));
  }

  /**
   * Sends the page `load` reads as TOML or JSON per the request's Accept header, streamed, with
   * its length. Reading and rendering wait for their turn in the server's admission gate (a page
   * of big invoices is megabytes read and rendered synchronously), queued by the client's address
   * (Fastify's `request.ip`: behind trusted proxies, the address they forward); streaming the
   * bytes does not. A request whose client has gone while it waited is dropped unread (the reply
   * is hijacked: there is no one to send it to).
   */
  async send(request: FastifyRequest, reply: FastifyReply, load: () => Promise<QueryPage>, head: boolean): Promise<FastifyReply> {
    const format = replyFormat(request.headers.accept);
    let parts: Buffer[];
    try {
      parts = await this.#gate.run(async () => this.render(await load(), format), () => !request.raw.destroyed, request.ip);
    } catch (err) {
      if (!(err instanceof AdmissionSkipped)) throw err;
      reply.hijack();
      return reply;
    }
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    reply.code(200).type(CONTENT_TYPE[format]).header('content-length', length);
    if (head) return reply.send();
    // A small reply goes out in one write; a large one as a stream of its pieces (no copy).
    return reply.send(length <= SINGLE_WRITE_BYTES ? Buffer.concat(parts, length) : Readable.from(parts, { objectMode: false }));
  }

  /** The TOML fragment of `stored`, rendered in the queue, once however many replies ask at a time. */
  #fragment(stored: StoredInvoice): Promise<Buffer> {
    const pending = this.#rendering.get(stored.canonicalId);
    if (pending !== undefined && pending.json === stored.json) return pending.toml;
    const toml = this.#queue.run(() => this.#renderToml(stored));
    const entry = { json: stored.json, toml };
    this.#rendering.set(stored.canonicalId, entry);
    const done = (): void => {
      if (this.#rendering.get(stored.canonicalId) === entry) this.#rendering.delete(stored.canonicalId);
    };
    toml.then(done, done);
    return toml;
  }

  #renderToml(stored: StoredInvoice): Buffer {
    const toml = Buffer.from(writeTomlTableArrayItem('invoices', stored.invoice as unknown as Record<string, unknown>), 'utf8');
    this.#cache.set(stored, toml);
    return toml;
  }
}
