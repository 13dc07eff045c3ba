/**
 * Deterministic fuzzing: a seeded PRNG (mulberry32) and generators of hostile strings, so that
 * every fuzz loop is bounded and repeats exactly with its fixed seed.
 */

/** A seeded source of pseudo-random choices. */
export class Fuzz {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** A string of up to `max` characters, mixing ASCII, controls, separators, marks and astral characters. */
  string(max: number): string {
    const length = this.int(max + 1);
    let out = '';
    for (let i = 0; i < length; i++) out += this.pick(ALPHABETS)(this);
    return out;
  }

  /** `text` with a few random edits: deletions, insertions, duplications, swaps of characters. */
  mutate(text: string, edits: number): string {
    let out = text;
    for (let i = 0; i < edits; i++) {
      const at = this.int(out.length + 1);
      switch (this.int(4)) {
        case 0:
          out = out.slice(0, at) + out.slice(at + 1 + this.int(8));
          break;
        case 1:
          out = out.slice(0, at) + this.string(6) + out.slice(at);
          break;
        case 2:
          out = out.slice(0, at) + out.slice(at, at + this.int(64)).repeat(1 + this.int(4)) + out.slice(at);
          break;
        default:
          out = out.slice(0, at) + this.pick(TOKENS) + out.slice(at);
      }
    }
    return out;
  }
}

/** Characters that parsers, routers and headers tend to get wrong. */
const ALPHABETS: ReadonlyArray<(f: Fuzz) => string> = [
  (f) => String.fromCharCode(0x20 + f.int(0x5f)),
  (f) => String.fromCharCode(f.int(0x20)),
  (f) => f.pick(['/', '@', '%', '.', '..', '\\', '?', '#', '&', '=', '+', ' ', '"', "'", '*', '^', '~', '|', '||', '-', '_']),
  (f) => f.pick(['\u0301', '\u0308', '\u200b', '\u2028', '\u202e', '\ufeff', '\ufffd', 'а', 'é', 'ß', '漢', '😀', '\ud800']),
  (f) => f.pick(['%00', '%2F', '%2e%2e', '%ff', '%c0%af', '%', '%zz', '%0d%0a']),
];

const TOKENS: readonly string[] = [
  '[', ']', '[[', ']]', '{', '}', '"', '"""', "'''", '=', ',', '\n', '\r\n', '#', '.', '0x', '1e999', '-0', 'inf', 'nan',
  'true', 'null', '\\u0000', '\\', '[[parcel]]', '[bindle]', 'name = "x"', '[[signature]]', 'size = -1', 'mediaType = "a/b"',
];

/**
 * `value` as a JSON string with every non-printable-ASCII character escaped: safe in a test
 * message (tap's output would split a raw U+2028 into two lines and lose the assertion).
 */
export function printable(value: string): string {
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
