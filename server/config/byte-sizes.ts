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

/** Parses a byte size: plain bytes, or a number with B, KB, KiB, MB, MiB, GB, GiB, TB, TiB (any case). */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (m === null) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
