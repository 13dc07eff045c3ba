/**
 * Reporting parcel transfers: one line per finished parcel always (what CI logs show), and,
 * only on a terminal, a live progress line (bar, bytes, rate) while large parcels move.
 * Redraws are throttled; the live line is cleared before any other output.
 */
import type { Label } from '../../schema/index.js';
import type { TransferEvent } from '../lib/workflows.js';
import type { CliStream } from './cli-io.js';

/** Parcels at least this big get a live progress bar on a terminal. */
export const LARGE_TRANSFER_BYTES = 1024 * 1024;
const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 24;

/** Receives a transfer's events; `finish` clears the live line. */
export interface TransferReporter {
  onEvent(event: TransferEvent): void;
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

interface Active {
  label: Label;
  bytes: number;
}

/**
 * A reporter writing to `stream`. `doneLine` phrases the line printed when a parcel is done
 * (e.g. "Fetched parcel <sha>"). Live bars are drawn only when `live` is true (the caller
 * passes "stdout is a terminal and progress is wanted").
 */
export function createTransferReporter(stream: CliStream, opts: { live: boolean; doneLine: (label: Label) => string; now?: () => number }): TransferReporter {
  const now = opts.now ?? Date.now;
  const active = new Map<string, Active>();
  let startedAt: number | undefined;
  let movedBefore = 0;
  let lastDraw = 0;
  let drawn = false;

  const clear = (): void => {
    if (drawn) {
      stream.write('\r\x1b[2K');
      drawn = false;
    }
  };

  const draw = (force: boolean): void => {
    if (!opts.live) return;
    const large = [...active.values()].filter((a) => a.label.size >= LARGE_TRANSFER_BYTES);
    if (large.length === 0) {
      clear();
      return;
    }
    const t = now();
    if (!force && t - lastDraw < REDRAW_INTERVAL_MS) return;
    lastDraw = t;
    const total = large.reduce((n, a) => n + a.label.size, 0);
    const done = large.reduce((n, a) => n + Math.min(a.bytes, a.label.size), 0);
    const fraction = total === 0 ? 1 : done / total;
    const filled = Math.round(fraction * BAR_WIDTH);
    const elapsed = Math.max((t - (startedAt ?? t)) / 1000, 0.001);
    const rate = (movedBefore + done) / elapsed;
    const what = large.length === 1 ? (large[0]?.label.name ?? '') : `${large.length} parcels`;
    let text = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s  ${what}`;
    const width = stream.columns !== undefined && stream.columns >= 20 ? stream.columns : 80;
    if (text.length > width - 1) text = text.slice(0, width - 1);
    stream.write(`\r\x1b[2K${text}`);
    drawn = true;
  };

  const line = (text: string): void => {
    clear();
    stream.write(`${text}\n`);
    draw(true);
  };

  return {
    onEvent(event: TransferEvent): void {
      const key = event.label.sha256;
      if (event.kind === 'start') {
        startedAt ??= now();
        active.set(key, { label: event.label, bytes: 0 });
        draw(false);
      } else if (event.kind === 'progress') {
        const entry = active.get(key);
        if (entry !== undefined) entry.bytes = event.bytes;
        draw(false);
      } else {
        const entry = active.get(key);
        if (entry !== undefined && entry.label.size >= LARGE_TRANSFER_BYTES) movedBefore += entry.label.size;
        active.delete(key);
        line(opts.doneLine(event.label));
      }
    },
    line,
    finish(): void {
      clear();
    },
  };
}
