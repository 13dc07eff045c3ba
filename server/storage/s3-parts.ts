/**
 * PartWriter: cuts an upload's bytes into the parts of an S3 multipart upload as they arrive.
 * Once an upload has its part buffers (buffers of exactly the part size, each reused once its
 * part is stored), received chunks are copied into the part being filled as they come, so what
 * it holds is those buffers and not, besides them, a part's worth of received chunks waiting to
 * be copied. Parts past a PartSpool's memory cap are gathered in spool files instead
 * (./part-spool.ts).
 */

import { IdleWatch } from './idle-watch.js';
import type { PartPlace, PartSpool } from './part-spool.js';
import type { ReadBackLease } from './read-back-pool.js';

/** Sends one part (numbered from 1); the buffer is the writer's again once the promise settles. */
export type SendPart = (partNumber: number, body: Buffer) => Promise<void>;

/** A stored part's buffer kept for the upload's next part, with the reservation under the spool's cap that covers it. */
interface Spare {
  readonly buffer: Buffer;
  /** Undefined without a spool. */
  readonly place: PartPlace | undefined;
}

/**
 * The parts of one multipart upload. Every part but the last is `partBytes` long. Up to
 * `inFlight` parts are being sent while the next one fills; once that one is full too, `add`
 * sends it and waits for the oldest of them, so an upload never holds more than `inFlight + 1`
 * part buffers.
 *
 * A part fills a spare buffer (one whose part was stored) at once. Without one, its chunks are
 * kept as received until the part is complete, and only then copied into a buffer of its own:
 * besides the buffers of parts it has sent, an upload holds no more than the bytes it received,
 * so a client that declares a big parcel and sends a few bytes makes the server allocate no part.
 *
 * Spare buffers are let go once no bytes have come for a whole IDLE_RELEASE_MS while no `add`
 * waited for the service (so between one and two IDLE_RELEASE_MS after the last bytes), and so,
 * given a PartSpool, is a part buffer that holds fewer than the spool's `wholeFrom` bytes (they
 * are copied out): an upload whose client stopped sending (or sends a byte now and then) holds
 * the part it is filling, not idle buffers of parts it sent before (up to `inFlight` of them,
 * 24 MiB with the store's settings). The timer that watches for this is set when a part is sent,
 * not per `add` (which just counts itself), so receiving costs no timer call per chunk.
 *
 * Given a PartSpool, every part buffer the upload holds is counted by it:
 * - a part without a spare buffer is kept in memory only while the spool's cap allows what it
 *   holds there (its bytes while they are few, then the part's whole size, PartPlace.hold); once
 *   the cap refuses more, the part so far is written to a spool file and the rest appended as it
 *   comes; a part that takes up a spare takes its reservation too;
 * - a part in memory keeps its reservation while it is sent, until the service has answered;
 * - a stored part's buffer is kept as a spare only with a reservation that covers it (the part's
 *   own, or one the cap allows then), given back when the spare is let go;
 * - a spooled part, once complete, is read back into a spare buffer if there is one, else into a
 *   buffer the spool lends within its read-back cap, waiting for one there, held until the
 *   service has answered for it;
 * - a part buffer the upload lets go is kept by the spool, within its read-back cap, for the next
 *   read-backs and for new part buffers of any upload (ReadBackPool.keepFree, takeFree).
 * So what the uploads of a process hold in part buffers stays within the two caps, however many
 * of them stop part-way, send at once or wait for the service; a part that arrives whole in one
 * chunk (a chunk as long as a part, which the store's receive batches never are) is the one
 * exception, sent from a buffer of its own.
 *
 * A part that fails rejects the `add` that waits for it, or `finish`; `settled` waits for every
 * part sent, whatever became of it. `finish` and `close` end the writer (its idle timer, its
 * spares): every writer is closed once its upload is over, stored or failed, so that nothing keeps
 * it, and the buffers it refers to, alive after it.
 */
export class PartWriter {
  private readonly sending: Promise<void>[] = [];
  private readonly spare: Spare[] = [];
  /** The part being filled, once it has a buffer. */
  private filling: Buffer | undefined;
  private filled = 0;
  /** The part's chunks as received (not copied), while it has no buffer. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private allocated = 0;
  /**
   * Lets the spares (and a part buffer holding few bytes) go once a whole IDLE_RELEASE_MS passed
   * without an `add` while no `add` waited for the service; armed while parts are under way
   * (their buffers are spares once stored) or spares are kept, it stops once it let them go.
   */
  private readonly idle = new IdleWatch(() => {
    this.letSparesGo();
    this.shrinkFilling();
    this.released = true;
  }, () => this.waiting);
  /** The spares were let go, and no `add` has come since: parts stored now keep no buffer either. */
  private released = false;
  /** An `add` is waiting for a part to be stored: the upload waits for the service, not its client. */
  private waiting = false;
  /** Where the spool put the part being filled (in memory, or in a spool file past its cap). */
  private place: PartPlace | undefined;

  constructor(
    private readonly partBytes: number,
    private readonly inFlight: number,
    private readonly send: SendPart,
    /** Where parts go past the memory cap; without one, every part is kept in memory. */
    private readonly spool?: PartSpool,
  ) {
    if (!(Number.isSafeInteger(partBytes) && partBytes > 0)) throw new RangeError(`part size must be a positive integer, got ${partBytes}`);
    if (!(Number.isSafeInteger(inFlight) && inFlight > 0)) throw new RangeError(`parts in flight must be a positive integer, got ${inFlight}`);
  }

  /** Part buffers this writer allocated so far (not counting those the spool lent it or kept free for it). */
  get buffers(): number {
    return this.allocated;
  }

  /** Parts sent so far, the one under way included. */
  get parts(): number {
    return this.sending.length;
  }

  /** Bytes held for parts not yet sent: the part being filled (its buffer, or its chunks) and spare buffers. */
  get held(): number {
    return (this.filling?.length ?? 0) + this.pendingBytes + this.spare.reduce((n, { buffer }) => n + buffer.length, 0);
  }

  /** Takes `chunk`'s bytes into the parts, sending each part that fills up. `chunk` must not change afterwards. */
  async add(chunk: Buffer): Promise<void> {
    this.released = false;
    this.idle.touch();
    for (let offset = 0; offset < chunk.length; ) {
      const spooled = this.place?.file;
      if (spooled !== undefined) {
        const piece = chunk.subarray(offset, offset + this.partBytes - spooled.size);
        offset += piece.length;
        await spooled.append(piece);
        if (spooled.size === this.partBytes) await this.sendSpooled();
        continue;
      }
      const room = this.partBytes - this.filled - this.pendingBytes;
      const piece = chunk.subarray(offset, offset + room);
      offset += piece.length;
      if (this.filling === undefined && this.pendingBytes + piece.length < this.partBytes) {
        // A spare buffer, with its reservation, takes up the part at once; without one the part
        // goes on in memory, as its chunks, if the spool's cap allows what it will hold.
        this.filling = this.takeSpare();
        if (this.filling === undefined) {
          if (!this.holdInMemory(this.pendingBytes + piece.length)) {
            await this.spill(piece);
            continue;
          }
          this.pending.push(piece);
          this.pendingBytes += piece.length;
          continue;
        }
      }
      // The part has its buffer, or is complete and sent now.
      const part = (this.filling ??= this.takeSpare() ?? this.allocate());
      for (const held of this.pending) this.filled += held.copy(part, this.filled);
      this.pending = [];
      this.pendingBytes = 0;
      this.filled += piece.copy(part, this.filled);
      if (this.filled === this.partBytes) await this.sendPart(part.subarray(0, this.filled));
    }
  }

  /** Sends what is left as the last part and waits for every part; rejects if any failed. Ends the writer. */
  async finish(): Promise<void> {
    // A spooled last part is read back into a spare buffer, if there is one, before they go.
    const spare = this.place?.file === undefined ? undefined : this.spare.pop();
    this.retire();
    if (this.place?.file !== undefined) await this.sendSpooled(spare);
    else if (this.filling !== undefined && this.filled > 0) await this.sendPart(this.filling.subarray(0, this.filled));
    else if (this.pendingBytes > 0) await this.sendPart(Buffer.concat(this.pending, this.pendingBytes));
    else this.endPart();
    await Promise.all(this.sending);
  }

  /** Waits for every part sent to succeed or fail. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.sending);
  }

  /**
   * Ends the writer: it takes no more bytes; its idle timer is cleared, its spare buffers let go,
   * and the part it was filling given up (its reservation, its spool file). Parts still being
   * sent give theirs back once the service has answered.
   */
  close(): void {
    this.retire();
    this.endPart();
    if (this.filling !== undefined) this.spool?.buffers.keepFree(this.filling);
    this.filling = undefined;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Clears the idle timer and lets the spares go, for good: the writer takes no more bytes. */
  private retire(): void {
    this.idle.clear();
    this.letSparesGo();
    this.released = true;
  }

  /** Drops the spare buffers (to the spool's free buffers, if it has room) and gives their reservations back. */
  private letSparesGo(): void {
    for (const { buffer, place } of this.spare) {
      place?.end();
      this.spool?.buffers.keepFree(buffer);
    }
    this.spare.length = 0;
  }

  /** A spare buffer for the part being filled, if there is one; the spare's reservation becomes the part's. */
  private takeSpare(): Buffer | undefined {
    const spare = this.spare.pop();
    if (spare === undefined) return undefined;
    if (spare.place !== undefined) {
      this.place?.end();
      this.place = spare.place;
    }
    return spare.buffer;
  }

  /**
   * An idle upload's part that holds fewer bytes than the spool's `wholeFrom` in a part buffer
   * gives the buffer up: its bytes are copied out and it reserves just them (PartPlace.shrink).
   */
  private shrinkFilling(): void {
    const place = this.place;
    if (this.spool === undefined || this.filling === undefined || place === undefined || this.filled >= this.spool.wholeFrom) return;
    const held = Buffer.from(this.filling.subarray(0, this.filled));
    this.spool.buffers.keepFree(this.filling);
    this.filling = undefined;
    this.filled = 0;
    place.shrink(held.length);
    this.pending = held.length === 0 ? [] : [held];
    this.pendingBytes = held.length;
  }

  /** The part being filled is given up: its reservation and its spool file go. */
  private endPart(): void {
    this.place?.end();
    this.place = undefined;
  }

  /**
   * Makes the part's reservation under the spool's cap cover holding `bytes` of it
   * (PartPlace.hold); true without a spool (every part is kept in memory then).
   */
  private holdInMemory(bytes: number): boolean {
    if (this.spool === undefined) return true;
    this.place ??= this.spool.begin();
    return this.place.hold(bytes, this.partBytes);
  }

  /** Moves the part being filled, its chunks so far and then `piece`, to a spool file. */
  private async spill(piece: Buffer): Promise<void> {
    if (this.place === undefined) throw new Error('only a part placed by the spool spills');
    const held = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await this.place.spill([...held, piece]);
  }

  /**
   * Reads the spooled part back and sends it: into `into` or a spare buffer (whose reservation
   * goes with it) if there is one, else into a new buffer under the spool's read-back cap, once
   * there is room.
   */
  private async sendSpooled(into?: Spare): Promise<void> {
    const spooled = this.place?.file;
    if (spooled === undefined) return;
    if (spooled.size === 0) {
      this.endPart();
      return;
    }
    const spare = into ?? this.spare.pop();
    let lease: ReadBackLease | undefined;
    if (spare === undefined && this.spool !== undefined) {
      lease = await this.spool.buffers.lend(spooled.size, this.partBytes);
      if (this.place?.file !== spooled) {
        lease.release();
        throw new Error('the upload was closed while its part waited to be read back');
      }
    }
    const release = lease?.release;
    const buffer = spare?.buffer ?? lease?.buffer ?? this.allocate();
    let body: Buffer;
    try {
      body = await spooled.readInto(buffer);
    } catch (err) {
      release?.();
      spare?.place?.end();
      throw err;
    } finally {
      this.endPart();
    }
    // A lent buffer is the spool's again once the part is answered for, not a spare of this upload.
    this.filling = lease === undefined ? buffer : undefined;
    this.place = spare?.place;
    await this.sendPart(body, release);
  }

  /**
   * A part was stored or failed: its read-back room (`release`) goes back; its buffer is kept as
   * a spare while the writer keeps spares and a reservation covers it (the part's own `place`,
   * or one the cap allows now), else dropped with the part's reservation.
   */
  private partDone(part: Buffer | undefined, place: PartPlace | undefined, release: (() => void) | undefined): void {
    release?.();
    if (part === undefined || this.released) {
      place?.end();
      if (part !== undefined) this.spool?.buffers.keepFree(part);
      return;
    }
    let covered = place;
    if (this.spool !== undefined) {
      covered ??= this.spool.begin();
      if (!covered.hold(part.length, part.length)) {
        covered.end();
        this.spool.buffers.keepFree(part);
        return;
      }
    }
    this.spare.push({ buffer: part, place: covered });
    this.idle.arm();
  }

  /** A part buffer: one the spool keeps free if it has one of the size, else a new one. */
  private allocate(): Buffer {
    const free = this.spool?.buffers.takeFree(this.partBytes);
    if (free !== undefined) return free;
    this.allocated++;
    return Buffer.allocUnsafe(this.partBytes);
  }

  /**
   * Sends `body` (the part being filled, or its pending chunks together) as the next part, its
   * reservation (and `release`, its read-back room) held until the service has answered; then,
   * with more than `inFlight` under way, waits for the oldest of them.
   */
  private async sendPart(body: Buffer, release?: () => void): Promise<void> {
    const place = this.place;
    this.place = undefined;
    const part = this.filling;
    this.filling = undefined;
    this.filled = 0;
    this.pending = [];
    this.pendingBytes = 0;
    const sent = this.send(this.sending.length + 1, body).finally(() => this.partDone(part, place, release));
    sent.catch(() => undefined);
    this.sending.push(sent);
    if (part !== undefined && !this.released) this.idle.arm();
    const oldest = this.sending.at(-this.inFlight - 1);
    if (oldest === undefined) return;
    this.waiting = true;
    try {
      await oldest;
    } finally {
      this.waiting = false;
    }
  }
}
