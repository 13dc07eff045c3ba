/**
 * Byte sizes as the configuration writes them: plain bytes, or a number with a unit (`512KiB`,
 * `10MB`, `1.5GiB`). The one reading of them, for the settings (./server-config.ts) and the
 * parameters of backend specs (./backend-specs.ts).
 */

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** What a size looks like, for error messages. */
export const SIZE_RULE = 'use bytes or a number with a unit (KB, KiB, MB, MiB, GB, GiB, TB, TiB)';

/** The largest size: the largest whole number of bytes a JavaScript number holds exactly. */
export const MAX_BYTE_SIZE = Number.MAX_SAFE_INTEGER;

/**
 * Parses a byte size: plain bytes, or a number with B, KB, KiB, MB, MiB, GB, GiB, TB, TiB (any
 * case). Undefined when `text` is not a size; a size larger than MAX_BYTE_SIZE is returned as
 * such (possibly Infinity), and the caller checks the range, saying it is too large.
 */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (m === null) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.floor(Number(m[1]) * unit);
}
