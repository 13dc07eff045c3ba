/**
 * The Bindle provider: every protocol operation as one method, over the seams (parcel store,
 * invoice index, verifier) and the host's signing key. Routes translate HTTP to these calls and
 * back; this layer owns the rules (verification, host counter-signature, yank, hard delete with
 * its signed tombstone, missing parcels).
 * It keeps no state of its own: the invoice index is the only record of invoices and decides
 * every race, so any number of instances (replicas) may serve one index and parcel store.
 */
import type { Readable } from 'node:stream';
import type { Invoice, KeyRing, Label, QueryReply, SignatureRole } from '../../schema/index.js';
import { canonicalInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { mapLimit } from '../../core/concurrency.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { canonicalId, formatId, isSha256Hex, makeId, type BindleId } from '../../core/ids/bindle-id.js';
import type { Keyring } from '../../core/signing/keyring.js';
import { signInvoiceWith, yankInvoiceWith, type Signer } from '../../core/signing/signer.js';
import { signatureStandings, type SignatureStandings } from '../../core/signing/signature-standing.js';
import { formatStrategy, verifySignature } from '../../core/signing/verification.js';
import type { InvoiceVerifier } from '../../core/signing/verifier.js';
import { isTombstone, type InvoiceIndex, type InvoiceQuery, type StoredInvoice, type Tombstone } from '../storage/invoice-index.js';
import type { ByteRange, ParcelStore } from '../storage/parcel-store.js';
import { signTombstone } from './tombstones.js';
import type { OciArtifact } from '../storage/oci-records.js';
import { OciService } from './oci-service.js';
import { ParcelReader, type ParcelBody } from '../storage/parcel-reader.js';

export interface BindleServiceDeps {
  parcels: ParcelStore;
  index: InvoiceIndex;
  verifier: InvoiceVerifier;
  /** Signs as the server (a key with the host role): counter-signatures and yanks. */
  signer: Signer;
  /** Public keys served at /bindle-keys (the host's own keys). */
  hostKeyring: Keyring;
  maxParcelBytes: number;
  /** OCI upload sessions idle longer than this are abandoned (default: the parcel stores' staging max age). */
  stagingMaxAgeMs?: number;
  /** Serves parcel reads (sizes remembered, small parcels from memory); default: one over `parcels`. */
  reader?: ParcelReader;
  /** Unix seconds; injectable for tests. */
  now?: () => number;
}

export interface CreateResult {
  stored: StoredInvoice;
  /** Labels of parcels the server does not have yet (deduplicated, invoice order). */
  missing: Label[];
}

export interface CreateOptions {
  /** Create it even if it was hard-deleted, replacing its tombstone (an admin's explicit leave). */
  allowDeleted?: boolean;
}

/** Where an invoice stands with the server's trust now (see BindleService.signatureReport). */
export interface SignatureReport {
  /** The verification strategy, as configured (e.g. `GreedyVerification`). */
  readonly strategy: string;
  /** Whether the invoice verifies under it now; when not, the verifier's reason. */
  readonly verdict: { readonly trusted: true } | { readonly trusted: false; readonly problem: string };
  readonly standings: SignatureStandings;
}

export interface ParcelInfo {
  label: Label;
  size: number;
}

function invalidParcelId(sha256: string): BindleError {
  return new BindleError('invalid_id', `invalid parcel id ${JSON.stringify(sha256)}: expected 64 lowercase hex characters`);
}

/** Refuses a parcel that is not on the invoice, with `code` (a GET's `not_found`, an upload's own code). */
function notOnInvoice(code: 'parcel_not_on_invoice' | 'not_found', id: BindleId, sha256: string): never {
  throw new BindleError(code, `parcel ${sha256} is not listed on invoice ${formatId(id)}`);
}

function uniqueLabels(inv: Invoice): Label[] {
  const seen = new Set<string>();
  const out: Label[] = [];
  for (const p of inv.parcel ?? []) {
    if (!seen.has(p.label.sha256)) {
      seen.add(p.label.sha256);
      out.push(p.label);
    }
  }
  return out;
}

/**
 * Parcels getParcels asks the store about at once. A small parcel's look-up reads it whole, so
 * this also bounds the bytes one batch holds in flight (16 × 64 KiB); what is read is kept by the
 * ParcelReader within its budget and served from there.
 */
const PARCEL_LOOK_UPS = 16;

/**
 * The labels of an invoice's parcels by digest (the first of each), built once per invoice
 * object: the index hands out the same object while it caches it, so a parcel GET finds its
 * label without a walk of the list.
 */
const LABELS = new WeakMap<Invoice, ReadonlyMap<string, Label>>();

function labelsOf(inv: Invoice): ReadonlyMap<string, Label> {
  let labels = LABELS.get(inv);
  if (labels === undefined) {
    labels = new Map(uniqueLabels(inv).map((label) => [label.sha256, label]));
    LABELS.set(inv, labels);
  }
  return labels;
}

/** What the index found for `id`, if it may be served: not_found, deleted (410), or yanked (403) unless `allowYanked`. */
function servedInvoice(id: BindleId, found: StoredInvoice | Tombstone | undefined, allowYanked: boolean): StoredInvoice {
  if (found === undefined) throw new BindleError('not_found', `invoice ${formatId(id)} not found`);
  if (isTombstone(found)) throw new BindleError('deleted', `invoice ${formatId(id)} was deleted by an administrator`);
  if (found.yanked && !allowYanked) {
    throw new BindleError('yanked', `invoice ${formatId(id)} has been yanked (add ?yanked=true to fetch it anyway)`);
  }
  return found;
}

export class BindleService {
  /** The same bindles over the OCI Distribution API (server/oci/). */
  readonly oci: OciService;
  private readonly deps: BindleServiceDeps;
  private readonly now: () => number;
  /** Parcel reads; also what a removal of a parcel in this process must tell (`reader.forget`). */
  readonly reader: ParcelReader;

  constructor(deps: BindleServiceDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => Math.floor(Date.now() / 1000));
    this.reader = deps.reader ?? new ParcelReader(deps.parcels);
    this.oci = new OciService({ ...deps, reader: this.reader }, (invoice, artifact) => this.createInvoice(invoice, {}, artifact));
  }

  /**
   * Verifies, counter-signs as host and stores a new invoice; reports its missing parcels.
   * `artifact`: the OCI manifest and config pushed for it, kept verbatim (server/oci/).
   */
  async createInvoice(input: Invoice, options: CreateOptions = {}, artifact?: OciArtifact): Promise<CreateResult> {
    if (input.yanked === true) {
      throw new BindleError('yanked_create', 'cannot create an invoice that is already yanked (yanked = true)');
    }
    if (input.yankedSignature !== undefined) {
      throw new BindleError('invalid_invoice', 'invalid invoice: yankedSignature is set by the server when it yanks');
    }
    const id = makeId(input.bindle.name, input.bindle.version);
    (input.parcel ?? []).forEach((p, i) => {
      if (!isSha256Hex(p.label.sha256)) {
        throw new BindleError(
          'invalid_invoice',
          `invalid invoice: parcel[${i}].label.sha256: must be 64 lowercase hex characters (got ${JSON.stringify(p.label.sha256)})`,
        );
      }
    });
    this.deps.verifier.verify(input);
    const alreadyHostSigned = this.checkOwnSignatures(input);
    if ((await this.deps.index.get(id.name, id.version)) !== undefined) {
      throw new BindleError('already_exists', `invoice ${formatId(id)} already exists`);
    }
    await this.checkLabelSizes(input);
    const signed = alreadyHostSigned ? input : await signInvoiceWith(input, 'host', this.deps.signer, this.now());
    const stored = { ...this.toStored(id, signed, Date.now()), ...(artifact === undefined ? {} : { oci: artifact }) };
    // The check above only saves signing work: the index's one insert transaction decides, so
    // of racing creates (in any replica) exactly one stores the invoice, the rest get already_exists.
    // The index also refuses a hard-deleted id (deleted), unless allowDeleted replaces its tombstone.
    await this.deps.index.insert(stored, { replaceTombstone: options.allowDeleted === true });
    return { stored, missing: await this.missingOf(stored.invoice) };
  }

  /**
   * The stored invoice; not_found, deleted (410) when hard-deleted, or yanked (403) unless
   * `allowYanked`. One reaction on the lookup rather than an async function: this is every
   * invoice GET's path, where each extra promise and microtask shows.
   */
  getInvoice(id: BindleId, allowYanked = false): Promise<StoredInvoice> {
    return this.deps.index.lookup(id.name, id.version).then((found) => servedInvoice(id, found, allowYanked));
  }

  /**
   * What getInvoice resolves to, handed to `use` (or what it rejects with, and whatever `use`
   * throws, to `fail`) in the one reaction on the index's look-up, with no promise of its own:
   * the invoice GET's path, which sends the reply from `use`.
   */
  withInvoice(id: BindleId, allowYanked: boolean, use: (stored: StoredInvoice) => void, fail: (err: unknown) => void): void {
    this.deps.index.lookup(id.name, id.version).then((found) => {
      try {
        use(servedInvoice(id, found, allowYanked));
      } catch (err) {
        fail(err);
      }
    }, fail);
  }

  /**
   * At once, the invoice a GET without `?yanked` would be served now, when the index can tell
   * without waiting (InvoiceIndex.cachedInvoice); undefined otherwise, also when that GET would be
   * refused (yanked): withInvoice then answers, with its error.
   */
  cachedInvoice(id: BindleId): StoredInvoice | undefined {
    const found = this.deps.index.cachedInvoice?.(id.name, id.version);
    return found === undefined || found.yanked ? undefined : found;
  }

  /**
   * At once, the parcel a GET (`withBytes`) or HEAD of `sha256` on invoice `id` (without
   * `?yanked`) would be served now, when neither the index nor the parcel store has to be asked
   * (cachedInvoice, ParcelReader.knownSize, and for a GET ParcelReader.cachedBytes): its label,
   * size and (for a GET) bytes. Undefined otherwise, also when that request would be refused:
   * getParcel then answers, with its error. The invoice is looked for last, so that a parcel
   * this cannot answer for costs the index nothing.
   */
  cachedParcel(id: BindleId, sha256: string, withBytes: boolean): (ParcelInfo & { bytes: Buffer | undefined }) | undefined {
    if (!isSha256Hex(sha256)) return undefined;
    const size = this.reader.knownSize(sha256);
    if (size === undefined) return undefined;
    const bytes = withBytes ? this.reader.cachedBytes(sha256) : undefined;
    if (withBytes && bytes === undefined) return undefined;
    const stored = this.cachedInvoice(id);
    const label = stored === undefined ? undefined : labelsOf(stored.invoice).get(sha256);
    if (label === undefined) return undefined;
    return { label, size, bytes };
  }

  /**
   * Marks an invoice yanked with a host yank signature. Idempotent: a yank of a yanked invoice,
   * also one that another replica yanked meanwhile (the index's compare-and-set decides),
   * returns the stored yank.
   */
  async yank(id: BindleId, reason = ''): Promise<StoredInvoice> {
    const stored = await this.getInvoice(id, true);
    if (stored.yanked) return stored;
    const yanked = await yankInvoiceWith(stored.invoice, this.deps.signer, reason, this.now());
    const entry = this.toStored(id, yanked, stored.createdAt);
    if (await this.deps.index.yank(entry)) return entry;
    return this.getInvoice(id, true);
  }

  /**
   * Hard delete (admin): removes the invoice, yanked or not, and stores a tombstone signed with
   * the host key in the same index transaction, so the id cannot be created again unless an
   * admin allows it. Its parcels stay until garbage collection finds them unreferenced.
   * not_found when absent (deleted when already deleted); of racing deletes one wins.
   */
  async deleteInvoice(id: BindleId, deletedBy: string, reason = ''): Promise<Tombstone> {
    const stored = await this.getInvoice(id, true);
    const tombstone = await signTombstone(stored, this.deps.signer, deletedBy, reason, this.now());
    await this.deps.index.delete(tombstone);
    return tombstone;
  }

  /** Stores a parcel listed on the invoice, streaming and verifying its bytes. */
  async putParcel(id: BindleId, sha256: string, contentLength: number | undefined, data: Readable): Promise<void> {
    const label = await this.parcelLabel(id, sha256, false, 'parcel_not_on_invoice');
    if (label.size > this.deps.maxParcelBytes) {
      throw new BindleError(
        'payload_too_large',
        `parcel ${sha256} is ${label.size} bytes, over this server's limit of ${this.deps.maxParcelBytes} bytes`,
      );
    }
    if (contentLength !== undefined && contentLength !== label.size) {
      throw new BindleError(
        'size_mismatch',
        `parcel ${sha256}: Content-Length ${contentLength} does not match the label size ${label.size}`,
      );
    }
    // The store refuses a parcel it has (already_exists), a big one before it reads any of the data.
    await this.deps.parcels.put(sha256, label.size, data);
  }

  /** The label and stored size of a parcel that is on the invoice and uploaded. */
  async getParcel(id: BindleId, sha256: string, allowYanked = false): Promise<ParcelInfo> {
    const label = await this.parcelLabel(id, sha256, allowYanked, 'not_found');
    return { label, size: await this.storedSize(label) };
  }

  /**
   * getParcel for several parcels of one invoice, the invoice read once: their labels and stored
   * sizes in the order of `sha256s`. Refused as getParcel would refuse the first of them it
   * refuses: a parcel not on the invoice before any size is asked, then one not uploaded.
   */
  async getParcels(id: BindleId, sha256s: readonly string[], allowYanked = false): Promise<ParcelInfo[]> {
    const bad = sha256s.find((sha256) => !isSha256Hex(sha256));
    if (bad !== undefined) throw invalidParcelId(bad);
    const labels = labelsOf((await this.getInvoice(id, allowYanked)).invoice);
    const found = sha256s.map((sha256) => labels.get(sha256) ?? notOnInvoice('not_found', id, sha256));
    return mapLimit(found, PARCEL_LOOK_UPS, async (label) => ({ label, size: await this.storedSize(label) }));
  }

  /**
   * A parcel's stored size: remembered, else asked of the store (ParcelReader.sizeFor: a small
   * parcel is read whole at once); `not_found` when it is not uploaded.
   */
  private async storedSize(label: Label): Promise<number> {
    const size = this.reader.knownSize(label.sha256) ?? (await this.reader.sizeFor(label.sha256, label.size));
    if (size === undefined) throw new BindleError('not_found', `parcel ${label.sha256} has not been uploaded`);
    return size;
  }

  /**
   * A stored parcel's bytes (or a range of them) of `size` bytes as getParcel gave it; see
   * ParcelReader.read. Bytes kept in memory are returned as they are, without a promise.
   */
  readParcel(sha256: string, size: number, range?: ByteRange): ParcelBody | Promise<ParcelBody> {
    return this.reader.cachedBytes(sha256, range) ?? this.reader.read(sha256, size, range);
  }

  /** Labels of the invoice's parcels that are not stored yet. */
  async missing(id: BindleId): Promise<Label[]> {
    const stored = await this.getInvoice(id, false);
    return this.missingOf(stored.invoice);
  }

  /**
   * A `/_q` page: the reply's fields with the page's stored invoices (parsed only if read; the
   * reply renders them from their stored text).
   */
  async query(q: InvoiceQuery): Promise<Omit<QueryReply, 'invoices'> & { invoices: StoredInvoice[] }> {
    const result = await this.deps.index.query(q);
    return {
      query: q.query,
      strict: q.strict,
      offset: q.offset,
      limit: q.limit,
      total: result.total,
      more: q.offset + result.invoices.length < result.total,
      yanked: q.yanked,
      timestamp: this.now(),
      invoices: result.invoices,
    };
  }

  /**
   * Whether `inv` verifies now, under the server's strategy against the keys the verifier trusts
   * (its keyring may have changed since the invoice was accepted), and how each signature and
   * yank signature stands against those keys: for showing people, never for a decision.
   */
  signatureReport(inv: Invoice): SignatureReport {
    const { verifier } = this.deps;
    let verdict: SignatureReport['verdict'] = { trusted: true };
    try {
      verifier.verify(inv);
    } catch (err) {
      if (!isBindleError(err)) throw err;
      verdict = { trusted: false, problem: err.message };
    }
    return { strategy: formatStrategy(verifier.strategy), verdict, standings: signatureStandings(inv, verifier.trustedKeys()) };
  }

  /** The host's public keys, optionally only those with one of `roles`. Never a secret. */
  keys(roles?: readonly SignatureRole[]): KeyRing {
    const ring = roles === undefined || roles.length === 0 ? this.deps.hostKeyring : this.deps.hostKeyring.withRoles([...roles]);
    return ring.toDocument();
  }

  private async parcelLabel(
    id: BindleId,
    sha256: string,
    allowYanked: boolean,
    code: 'parcel_not_on_invoice' | 'not_found',
  ): Promise<Label> {
    if (!isSha256Hex(sha256)) throw invalidParcelId(sha256);
    const stored = await this.getInvoice(id, allowYanked);
    return labelsOf(stored.invoice).get(sha256) ?? notOnInvoice(code, id, sha256);
  }

  /**
   * Whatever the strategy, every signature that claims one of the server's own keys is verified
   * (a forged one is `unverified`), and one of them in a role other than host is refused (the
   * server signs only as host). True when the invoice already carries the server's valid host
   * signature by its current key, so it must not be signed again.
   */
  private checkOwnSignatures(input: Invoice): boolean {
    let hostSigned = false;
    for (const s of input.signature ?? []) {
      if (!this.deps.hostKeyring.contains(s.key)) continue;
      verifySignature(input, s);
      if (s.role !== 'host') {
        throw new BindleError(
          'unverified',
          `the ${s.role} signature by ${JSON.stringify(s.by)} on ${input.bindle.name}/${input.bindle.version} was made with this server's own key; the server signs only as host`,
        );
      }
      if (s.key === this.deps.signer.publicKey) hostSigned = true;
    }
    return hostSigned;
  }

  /**
   * Refuses an invoice whose labels give one parcel two sizes (invalid_invoice), or give a parcel
   * already stored another size than its stored bytes (size_mismatch): a parcel is its bytes, so
   * such a label could never be downloaded as it says, and an upload for it is refused as stored.
   * One batched look-up of the store (ParcelStore.storedSizes), before anything is written.
   */
  private async checkLabelSizes(inv: Invoice): Promise<void> {
    const labelled = new Map<string, number>();
    (inv.parcel ?? []).forEach(({ label }, i) => {
      const earlier = labelled.get(label.sha256);
      if (earlier !== undefined && earlier !== label.size) {
        throw new BindleError(
          'invalid_invoice',
          `invalid invoice: parcel[${i}].label.size: ${label.size}, but an earlier label gives parcel ${label.sha256} ${earlier} bytes`,
        );
      }
      labelled.set(label.sha256, label.size);
    });
    if (labelled.size === 0) return;
    for (const [sha256, size] of await this.deps.parcels.storedSizes([...labelled.keys()])) {
      const label = labelled.get(sha256);
      if (label !== size) {
        throw new BindleError('size_mismatch', `parcel ${sha256} is stored with ${size} bytes, but the invoice's label says ${String(label)} bytes`);
      }
    }
  }

  private async missingOf(inv: Invoice): Promise<Label[]> {
    const labels = uniqueLabels(inv);
    const missing = await this.deps.parcels.missing(labels.map((l) => l.sha256));
    return labels.filter((l) => missing.has(l.sha256));
  }

  private toStored(id: BindleId, signed: Invoice, createdAt: number): StoredInvoice {
    const invoice = canonicalInvoice(signed);
    return {
      name: id.name,
      version: id.version,
      canonicalId: canonicalId(id),
      invoice,
      toml: renderInvoice(invoice, 'toml'),
      json: renderInvoice(invoice, 'json'),
      yanked: invoice.yanked === true,
      createdAt,
    };
  }
}
