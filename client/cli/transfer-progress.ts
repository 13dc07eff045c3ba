/**
 * Reporting parcel transfers and long local steps: one line per finished parcel always (what CI
 * logs show), and, only on a terminal, one live line below them: the overall bar across all the
 * parcels of a push or get (bytes, parcels, rate and ETA), or the bar of a long local step
 * (hashing parcels, compressing an export). Redraws are throttled; the live line is cleared
 * before any other output and at the end. Without the live line, lines are gathered and written
 * together, at most REDRAW_INTERVAL_MS after the first of them: stdout to a pipe or file is
 * written synchronously, so a line per parcel was a blocking write per parcel (1000 of them in a
 * `get` of 1000 small parcels, each waking the reader).
 */
import type { Label } from '../../schema/index.js';
import type { TransferEvent } from '../lib/workflows.js';
import type { CliStream } from './cli-io.js';

const REDRAW_INTERVAL_MS = 100;
/** Gathered lines are written at once when they reach this many characters. */
const GATHERED_CHARS = 16 * 1024;
const BAR_WIDTH = 24;
/** No ETA is shown before this much time has passed (the rate is still noise). */
const ETA_AFTER_MS = 1000;

/**
 * Receives a transfer's events and local steps' progress; `finish` clears the live line. On a
 * stream that is not live (not a terminal, `--no-progress`) only `line` and the done lines of
 * parcels write anything; without `doneLine` (JSON output) only `line` does.
 */
export interface TransferReporter {
  onEvent(event: TransferEvent): void;
  /**
   * Progress of a long local step (e.g. "Hashing parcels"): `done` of `total` bytes. Shown until
   * the next line, transfer event or step; a step with `done === total` leaves the live line.
   */
  step(what: string, done: number, total: number): void;
  /** Prints a line, keeping the live progress line below it. */
  line(text: string): void;
  finish(): void;
}

/** `1536` → `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} B`;
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit] ?? ''}`;
}

/** `75` → `1:15`, `3725` → `1:02:05`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** `[#####-----]` for `fraction` of BAR_WIDTH. */
function bar(fraction: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}

/**
 * A reporter writing to `stream`. `doneLine` phrases the line printed when a parcel is done
 * (e.g. "Fetched parcel <sha>"); without it none is printed. Live lines are drawn only when `live` is true (the caller
 * passes "stdout is a terminal and progress is wanted"), cut to the terminal's width. When
 * `live` is false, lines reach `stream` in order but gathered (see the module comment), all of
 * them by `finish()`.
 */
export function createTransferReporter(stream: CliStream, opts: { live: boolean; doneLine?: (label: Label) => string; now?: () => number }): TransferReporter {
  const now = opts.now ?? Date.now;
  /** Bytes so far of the parcels in flight, by sha256. */
  const active = new Map<string, { label: Label; bytes: number }>();
  let plan: { parcels: number; bytes: number } | undefined;
  let startedAt: number | undefined;
  let doneParcels = 0;
  let doneBytes = 0;
  let seenBytes = 0;
  let currentStep: { what: string; done: number; total: number } | undefined;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let drawn = false;
  /** Lines not written yet (only when not live), and the timer that writes them. */
  let gathered = '';
  let flushTimer: NodeJS.Timeout | undefined;

  const flush = (): void => {
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    flushTimer = undefined;
    if (gathered === '') return;
    const text = gathered;
    gathered = '';
    stream.write(text);
  };

  const clear = (): void => {
    if (drawn) {
      stream.write('\r\x1b[2K');
      drawn = false;
    }
  };

  const transferText = (t: number): string | undefined => {
    if (plan === undefined && active.size === 0) return undefined;
    const total = plan?.bytes ?? seenBytes;
    let moved = doneBytes;
    for (const a of active.values()) moved += Math.min(a.bytes, a.label.size);
    const elapsedMs = t - (startedAt ?? t);
    const rate = elapsedMs > 0 ? moved / (elapsedMs / 1000) : 0;
    const parts = [`${bar(total === 0 ? 1 : moved / total)} ${formatBytes(moved)} / ${formatBytes(total)}`];
    if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
    if (rate > 0 && elapsedMs >= ETA_AFTER_MS && moved < total) parts.push(`ETA ${formatDuration((total - moved) / rate)}`);
    parts.push(plan === undefined ? `${doneParcels} parcel(s) done` : `${doneParcels}/${plan.parcels} parcels`);
    return parts.join('  ');
  };

  const draw = (force: boolean): void => {
    if (!opts.live) return;
    const t = now();
    const text = currentStep !== undefined
      ? `${currentStep.what} ${bar(currentStep.total === 0 ? 1 : currentStep.done / currentStep.total)} ${formatBytes(currentStep.done)} / ${formatBytes(currentStep.total)}`
      : transferText(t);
    if (text === undefined) {
      clear();
      return;
    }
    if (!force && t - lastDraw < REDRAW_INTERVAL_MS) return;
    lastDraw = t;
    const width = stream.columns !== undefined && stream.columns >= 20 ? stream.columns : 80;
    stream.write(`\r\x1b[2K${text.length > width - 1 ? text.slice(0, width - 1) : text}`);
    drawn = true;
  };

  const line = (text: string): void => {
    if (!opts.live) {
      gathered += `${text}\n`;
      if (gathered.length >= GATHERED_CHARS) flush();
      else flushTimer ??= setTimeout(flush, REDRAW_INTERVAL_MS);
      return;
    }
    clear();
    stream.write(`${text}\n`);
    draw(true);
  };

  /** The parcel's entry, added when a progress event comes without a start (a single download). */
  const track = (label: Label): { label: Label; bytes: number } => {
    startedAt ??= now();
    let entry = active.get(label.sha256);
    if (entry === undefined) {
      entry = { label, bytes: 0 };
      active.set(label.sha256, entry);
      seenBytes += label.size;
    }
    return entry;
  };

  return {
    onEvent(event: TransferEvent): void {
      currentStep = undefined;
      switch (event.kind) {
        case 'plan':
          plan = { parcels: event.parcels, bytes: event.bytes };
          startedAt = now();
          draw(true);
          return;
        case 'start':
          track(event.label).bytes = 0;
          draw(false);
          return;
        case 'progress':
          track(event.label).bytes = event.bytes;
          draw(false);
          return;
        case 'done': {
          const entry = track(event.label);
          active.delete(event.label.sha256);
          doneParcels += 1;
          doneBytes += entry.label.size;
          if (opts.doneLine !== undefined) line(opts.doneLine(event.label));
          else draw(false);
          return;
        }
        default: {
          const unknown: never = event;
          throw new Error(`unknown transfer event ${JSON.stringify(unknown)}`);
        }
      }
    },
    step(what: string, done: number, total: number): void {
      if (done >= total) {
        currentStep = undefined;
        clear();
        return;
      }
      const fresh = currentStep?.what !== what;
      currentStep = { what, done, total };
      draw(fresh);
    },
    line,
    finish(): void {
      currentStep = undefined;
      flush();
      clear();
    },
  };
}
