/**
 * Durations as the configuration writes them: milliseconds as a bare number, or a whole number
 * with a unit (`500ms`, `30s`, `15m`, `1h`). The one reading of them, for the settings
 * (./server-config.ts) and the parameters of backend specs (./backend-specs.ts).
 */

/** The units a duration may be written in; a bare number is milliseconds. */
const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest duration: setTimeout's largest delay. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** What a duration looks like, for error messages. */
export const DURATION_RULE = 'use milliseconds, or a whole number with ms, s, m or h';

/**
 * The milliseconds `value` (a number of milliseconds, or text as above) stands for; undefined
 * when it is not a whole, non-negative duration. The caller checks the range (MAX_DURATION_MS).
 */
export function parseDuration(value: unknown): number | undefined {
  let ms: number | undefined;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const m = /^\s*(\d+)\s*(ms|s|m|h)?\s*$/i.exec(value);
    const unit = m === null ? undefined : DURATION_UNITS_MS[(m[2] ?? 'ms').toLowerCase()];
    if (m !== null && unit !== undefined) ms = Number(m[1]) * unit;
  }
  return ms === undefined || !Number.isSafeInteger(ms) || ms < 0 ? undefined : ms;
}
