/**
 * The two transfer workflows built on BindleClient: push a standalone bindle (create the
 * invoice, upload only the parcels the server reports missing, loudly refuse a different release
 * under an existing id) and fetch a bindle into the local content-addressed cache (verified
 * invoice, re-hashed parcels; a cached parcel is re-hashed too, never fetched twice while intact
 * and replaced when corrupt). Transfers and cache checks run `client.concurrency` at a time.
 */
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Group, Invoice, Label, Parcel } from '../../schema/index.js';
import { canonicalInvoice, canonicalLabel, canonicalSignature, invoiceParcels, labelOnInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { DirectorySync, writeFileAtomic } from '../../core/fs-atomic.js';
import { canonicalId, formatId, parseId } from '../../core/ids/bindle-id.js';
import { absentParcels, INVOICE_FILE, PARCELS_DIR, parcelFileName, type StandaloneBindle } from '../standalone/standalone-bindle.js';
import type { BindleClient } from './bindle-client.js';
import { mapLimit } from '../../core/concurrency.js';
import { checkFile, describeParcel, readCheckedFile, SMALL_PARCEL_BYTES } from './parcel-digest.js';
import { batchesOf } from './parcel-batches.js';

/** What a push did. */
export interface PushReport {
  /** `name/version`. */
  id: string;
  /** True when this push created the invoice; false when the same release was already there. */
  created: boolean;
  /** sha256 of each parcel uploaded by this push. */
  uploaded: string[];
  /** sha256 of each parcel of the invoice the server already had. */
  alreadyPresent: string[];
  /** True when the same release was already on the server complete: nothing was created or uploaded. */
  noop: boolean;
}

/**
 * Progress of a push or fetch. `plan` comes first, once, with the number and total size of the
 * parcels about to move (zero when none do); then, per parcel, `start`, `progress` (`bytes` is the
 * count so far for that parcel, restarting on a retry) and `done`.
 */
export type TransferEvent =
  | { kind: 'plan'; parcels: number; bytes: number }
  | { kind: 'start'; label: Label }
  | { kind: 'progress'; label: Label; bytes: number }
  | { kind: 'done'; label: Label };

/** Labels with distinct sha256, first occurrence kept (invoices may repeat parcels). */
function distinctLabels(labels: readonly Label[]): Label[] {
  const seen = new Set<string>();
  const out: Label[] = [];
  for (const label of labels) {
    if (seen.has(label.sha256)) continue;
    seen.add(label.sha256);
    out.push(label);
  }
  return out;
}

/** The `plan` event for moving these parcels. */
function planOf(labels: readonly Label[]): TransferEvent {
  return { kind: 'plan', parcels: labels.length, bytes: labels.reduce((n, l) => n + l.size, 0) };
}

/** JSON with object keys sorted at every level, so that key order never makes two values differ. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function parcelView(p: Parcel): unknown {
  return { label: canonicalLabel(p.label), memberOf: p.conditions?.memberOf ?? [], requires: p.conditions?.requires ?? [] };
}

function groupView(g: Group): unknown {
  return { name: g.name, required: g.required ?? false, satisfiedBy: g.satisfiedBy ?? 'allOf' };
}

/**
 * How two invoices differ as releases: their bindle spec, annotations, parcels, groups and
 * non-host signatures (host signatures, yank state and defaults written out or left implicit do
 * not count). Empty when they are the same release.
 */
export function releaseDifferences(a: Invoice, b: Invoice): string[] {
  const ca = canonicalInvoice(a);
  const cb = canonicalInvoice(b);
  const signatures = (inv: Invoice): string[] =>
    (inv.signature ?? []).filter((s) => s.role !== 'host').map((s) => stableJson(canonicalSignature(s))).sort();
  const parts: Array<[string, unknown, unknown]> = [
    ['bindle name, version, description or authors', ca.bindle, cb.bindle],
    ['annotations', ca.annotations ?? {}, cb.annotations ?? {}],
    ['parcels', invoiceParcels(ca).map(parcelView), invoiceParcels(cb).map(parcelView)],
    ['groups', (ca.group ?? []).map(groupView), (cb.group ?? []).map(groupView)],
    ['signatures', signatures(ca), signatures(cb)],
  ];
  return parts.filter(([, x, y]) => stableJson(x) !== stableJson(y)).map(([what]) => `${what} differ`);
}

/** A stream of a file that reports the bytes read so far. */
function countedFileStream(path: string, onBytes: (bytes: number) => void): Readable {
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      bytes += chunk.length;
      onBytes(bytes);
      callback(null, chunk);
    },
  });
  pipeline(createReadStream(path), counter, () => {
    // A read error destroys `counter`, which is what the upload sees.
  });
  return counter;
}

/**
 * Pushes a standalone bindle: creates the invoice, then uploads only the parcels the server
 * reports missing, `client.concurrency` at a time.
 *
 * If the invoice already exists (409), the server's copy is fetched (verified when the client
 * has a keyring): when it is the same release (see releaseDifferences) the push carries on,
 * uploading any parcels still missing; otherwise it fails with `already_exists` naming what
 * differs. A same release that has been yanked fails with `yanked`. A missing parcel that the
 * standalone bindle does not hold fails with `not_found`: before anything is written when the
 * invoice is new (the bindle's own parcels were already checked by readStandalone), else after
 * the others are uploaded.
 */
export async function pushStandalone(
  client: BindleClient,
  bindle: StandaloneBindle,
  opts: { onProgress?: (e: TransferEvent) => void } = {},
): Promise<PushReport> {
  const invoice = bindle.invoice;
  const id = formatId({ name: invoice.bindle.name, version: invoice.bindle.version });
  const absentHere = absentParcels(bindle);
  if (absentHere.length > 0 && !(await client.invoiceExists(id))) {
    throw new BindleError(
      'not_found',
      `pushing ${id}: the standalone bindle ${bindle.root} lacks ${absentHere.length} parcel(s) its invoice lists: ${absentHere.map(describeParcel).join(', ')}; nothing was pushed (to publish an invoice whose parcels are already on the server, use push-invoice)`,
    );
  }
  let created: boolean;
  let missing: Label[];
  try {
    missing = (await client.createInvoice(invoice)).missing;
    created = true;
  } catch (err) {
    if (!isBindleError(err, 'already_exists')) throw err;
    const existing = await client.getInvoice(id, { yanked: true });
    const differences = releaseDifferences(existing, invoice);
    if (differences.length > 0) {
      throw new BindleError(
        'already_exists',
        `pushing ${id}: a different release ${id} already exists on the server (${differences.join('; ')}); publish this one under a new version`,
      );
    }
    if (existing.yanked === true) {
      throw new BindleError('yanked', `pushing ${id}: this release is already on the server and has been yanked; publish it under a new version`);
    }
    created = false;
    missing = await client.getMissingParcels(id);
  }
  const toSend = distinctLabels(missing);
  const missingShas = new Set(toSend.map((l) => l.sha256));
  const alreadyPresent = distinctLabels(invoiceParcels(invoice).map((p) => p.label))
    .filter((l) => !missingShas.has(l.sha256))
    .map((l) => l.sha256);
  const absent = toSend.filter((l) => !bindle.parcels.has(l.sha256));
  const uploadable = toSend.filter((l) => bindle.parcels.has(l.sha256));
  const emit = opts.onProgress ?? (() => undefined);
  emit(planOf(uploadable));
  const outcomes = await uploadParcels(client, id, bindle, uploadable, emit);
  const uploaded: string[] = [];
  for (const label of uploadable) {
    if (outcomes.get(label.sha256) === 'created') uploaded.push(label.sha256);
    else alreadyPresent.push(label.sha256);
  }
  if (absent.length > 0) {
    throw new BindleError(
      'not_found',
      `pushing ${id}: the server is missing ${absent.length} parcel(s) that the standalone bindle ${bindle.root} does not hold: ${absent.map(describeParcel).join(', ')}`,
    );
  }
  return { id, created, uploaded, alreadyPresent, noop: !created && uploaded.length === 0 };
}

/** Reports a parcel moved whole in one step (in a batch): its start, all its bytes, its end. */
function emitWhole(emit: (e: TransferEvent) => void, label: Label): void {
  emit({ kind: 'start', label });
  emit({ kind: 'progress', label, bytes: label.size });
  emit({ kind: 'done', label });
}

/**
 * Uploads `labels` (parcels of the standalone bindle), `client.concurrency` transfers at a time,
 * and resolves with each one's outcome by sha256. The small parcels, whose verified bytes the
 * bindle holds, go in batches (BindleClient.createParcels), far fewer requests than parcels;
 * against a server that takes no batch, they go one by one like the others, streamed from their
 * files.
 */
async function uploadParcels(
  client: BindleClient,
  id: string,
  bindle: StandaloneBindle,
  labels: readonly Label[],
  emit: (e: TransferEvent) => void,
): Promise<Map<string, 'created' | 'exists'>> {
  const outcomes = new Map<string, 'created' | 'exists'>();
  const inHand: Array<{ label: Label; data: Buffer }> = [];
  const streamed: Label[] = [];
  for (const label of labels) {
    const data = bindle.contents?.get(label.sha256);
    if (data === undefined) streamed.push(label);
    else inHand.push({ label, data });
  }
  let batchesTaken = true;
  const one = async (label: Label): Promise<void> => {
    const path = bindle.parcels.get(label.sha256) ?? '';
    // A small parcel's bytes, read and verified with the bindle, go as they are: no second read.
    const data = bindle.contents?.get(label.sha256);
    emit({ kind: 'start', label });
    outcomes.set(label.sha256, await client.createParcel(
      id,
      label,
      data ?? (() => countedFileStream(path, (bytes) => emit({ kind: 'progress', label, bytes }))),
    ));
    if (data !== undefined) emit({ kind: 'progress', label, bytes: data.length });
    emit({ kind: 'done', label });
  };
  const batch = async (parcels: ReadonlyArray<{ label: Label; data: Buffer }>): Promise<void> => {
    const reply = batchesTaken ? await client.createParcels(id, parcels) : undefined;
    if (reply === undefined) {
      batchesTaken = false;
      for (const { label } of parcels) await one(label);
      return;
    }
    const created = new Set(reply.created);
    for (const { label } of parcels) {
      emitWhole(emit, label);
      outcomes.set(label.sha256, created.has(label.sha256) ? 'created' : 'exists');
    }
  };
  // The streamed (large) parcels first: they take longest.
  const jobs: Array<() => Promise<void>> = [...streamed.map((label) => () => one(label)), ...batchesOf(inHand, client.concurrency, (p) => p.label.size).map((b) => () => batch(b))];
  await mapLimit(jobs, client.concurrency, (job) => job());
  return outcomes;
}

/** The names in a directory; none when it does not exist (or cannot be read). */
async function namesIn(dir: string): Promise<Set<string>> {
  try {
    return new Set(await readdir(dir));
  } catch {
    return new Set();
  }
}

/**
 * What the cache holds of a parcel: nothing (`absent`), the parcel (`intact`: its size and
 * sha256 are the label's), or other bytes (`corrupt`, with the size or digest mismatch found).
 */
export type CachedParcelState = { state: 'absent' } | { state: 'intact' } | { state: 'corrupt'; problem: BindleError };

/**
 * Checks the cache's file for `label` in `parcelsDir` against the label: its size, then its
 * sha256, read by streaming (a small parcel in one read). `names` is the directory's listing
 * when the caller has it: a parcel not listed costs no file access (a first get of 1000 would
 * make 1000). A file that cannot be read (none, not a file) is `absent`.
 */
export async function checkCachedParcel(parcelsDir: string, label: Label, names?: ReadonlySet<string>): Promise<CachedParcelState> {
  const name = parcelFileName(label.sha256);
  if (names !== undefined && !names.has(name)) return { state: 'absent' };
  const path = join(parcelsDir, name);
  const what = `${describeParcel(label)} in the cache ${path}`;
  try {
    if (label.size <= SMALL_PARCEL_BYTES) await readCheckedFile(path, label, what);
    else await checkFile(path, label, what);
    return { state: 'intact' };
  } catch (err) {
    if (isBindleError(err, 'size_mismatch') || isBindleError(err, 'digest_mismatch')) return { state: 'corrupt', problem: err };
    return { state: 'absent' };
  }
}

/**
 * A download temp file not written to for this long was left by an interrupted `get`: a running
 * download writes its temp file at least once per received batch, so its time stays recent.
 * Judged by age, never by process id (ids are reused, and every container's process is PID 1).
 */
export const ABANDONED_DOWNLOAD_AGE_MS = 10 * 60 * 1000;

/**
 * Removes the temp files an interrupted download left in `parcelsDir` (`.<sha>.dat.<…>.tmp`,
 * see core's tempPathFor; `names` is its listing) not modified for ABANDONED_DOWNLOAD_AGE_MS; a
 * running download's are kept.
 */
async function removeAbandonedTemps(parcelsDir: string, names: ReadonlySet<string>): Promise<void> {
  const cutoff = Date.now() - ABANDONED_DOWNLOAD_AGE_MS;
  for (const name of names) {
    if (!/^\.[0-9a-f]{64}\.dat\..+\.tmp$/.test(name)) continue;
    const path = join(parcelsDir, name);
    const modified = await stat(path).then((info) => info.mtimeMs, () => undefined);
    if (modified !== undefined && modified < cutoff) await rm(path, { force: true });
  }
}

/**
 * Downloads `labels` into `parcelsDir` (each as `<sha256>.dat`), `client.concurrency` transfers
 * at a time. The small parcels go in batches (BindleClient.downloadParcels), far fewer requests
 * than parcels; the parcels of a batch the server does not send, or that fails, are then
 * downloaded one by one like the large ones (which report a failure for what it is), and against
 * a server that takes no batch every parcel goes one by one.
 */
async function downloadParcels(
  client: BindleClient,
  id: string,
  labels: readonly Label[],
  parcelsDir: string,
  opts: { yanked?: boolean; emit: (e: TransferEvent) => void },
): Promise<void> {
  const { emit } = opts;
  const yanked = opts.yanked === undefined ? {} : { yanked: opts.yanked };
  // The downloads all rename into one directory: its fsyncs are shared (group commit).
  const directorySync = new DirectorySync(parcelsDir);
  let batchesTaken = true;
  const one = async (label: Label): Promise<void> => {
    emit({ kind: 'start', label });
    await client.downloadParcel(id, label, join(parcelsDir, parcelFileName(label.sha256)), {
      ...yanked,
      directorySync,
      onProgress: (bytes) => emit({ kind: 'progress', label, bytes }),
    });
    emit({ kind: 'done', label });
  };
  const batch = async (parcels: readonly Label[]): Promise<void> => {
    const stored = new Set<string>();
    const onStored = (label: Label): void => {
      stored.add(label.sha256);
      emitWhole(emit, label);
    };
    if (batchesTaken) {
      try {
        batchesTaken = await client.downloadParcels(id, parcels, { directorySync, fileName: (l) => parcelFileName(l.sha256) }, { ...yanked, onStored });
      } catch {
        // What the batch did not store is fetched one by one below, and a lasting failure is reported from there.
      }
    }
    for (const label of parcels) if (!stored.has(label.sha256)) await one(label);
  };
  const small = labels.filter((l) => l.size <= SMALL_PARCEL_BYTES);
  const large = labels.filter((l) => l.size > SMALL_PARCEL_BYTES);
  // The large parcels first: they take longest.
  const jobs: Array<() => Promise<void>> = [
    ...large.map((label) => () => one(label)),
    ...batchesOf(small, client.concurrency, (label) => label.size).map((b) => () => batch(b)),
  ];
  await mapLimit(jobs, client.concurrency, (job) => job());
}

/** What fetchBindle did. */
export interface FetchReport {
  /** The bindle's cache directory. */
  dir: string;
  /** The invoice, as the server sent it (verified when the client has a keyring). */
  invoice: Invoice;
  /** sha256 of each parcel downloaded (the corrupt ones included). */
  fetched: string[];
  /** sha256 of each parcel the cache already held intact (not downloaded). */
  cached: string[];
  /** Each parcel the cache held corrupt (`problem` says how), removed and downloaded again. */
  repaired: Array<{ label: Label; problem: BindleError }>;
}

/**
 * Fetches a bindle into the local cache `<cacheDir>/<canonicalId>/` (the standalone layout:
 * `invoice.toml` + `parcels/<sha>.dat`). The invoice is fetched (and verified when the client
 * has a keyring) every time and written last. Each requested parcel (`parcels`, which must be on
 * the invoice, default all) already cached is re-hashed (checkCachedParcel): an intact one is
 * not fetched again, a corrupt one is removed and, like the absent ones, downloaded, re-hashed
 * and renamed into place; checks and downloads run `client.concurrency` at a time. Temp files an
 * interrupted fetch left behind are removed first.
 */
export async function fetchBindle(
  client: BindleClient,
  id: string,
  cacheDir: string,
  opts: { yanked?: boolean; parcels?: Label[]; onProgress?: (e: TransferEvent) => void } = {},
): Promise<FetchReport> {
  const bid = parseId(id);
  const yanked = opts.yanked === undefined ? {} : { yanked: opts.yanked };
  const invoice = await client.getInvoice(id, yanked);
  const dir = join(cacheDir, canonicalId(bid));
  const parcelsDir = join(dir, PARCELS_DIR);
  const names = await namesIn(parcelsDir);
  await removeAbandonedTemps(parcelsDir, names);
  const wanted =
    opts.parcels === undefined
      ? distinctLabels(invoiceParcels(invoice).map((p) => p.label))
      : distinctLabels(opts.parcels.map((l) => labelOnInvoice(invoice, l.sha256)));
  const emit = opts.onProgress ?? (() => undefined);
  const states = await mapLimit(wanted, client.concurrency, (label) => checkCachedParcel(parcelsDir, label, names));
  const repaired: FetchReport['repaired'] = [];
  for (const [i, label] of wanted.entries()) {
    const state = states[i];
    if (state?.state !== 'corrupt') continue;
    repaired.push({ label, problem: state.problem });
    // Gone at once: a download that fails now leaves no corrupt copy for later (offline) use.
    // Recursive: whatever is at a parcel's place (a directory too) is not the parcel.
    await rm(join(parcelsDir, parcelFileName(label.sha256)), { force: true, recursive: true });
  }
  const toFetch = wanted.filter((_, i) => states[i]?.state !== 'intact');
  emit(planOf(toFetch));
  await downloadParcels(client, id, toFetch, parcelsDir, { ...yanked, emit });
  await writeFileAtomic(join(dir, INVOICE_FILE), renderInvoice(invoice, 'toml'), 0o644);
  return {
    dir,
    invoice,
    fetched: toFetch.map((l) => l.sha256),
    cached: wanted.filter((_, i) => states[i]?.state === 'intact').map((l) => l.sha256),
    repaired,
  };
}
