import t from 'tap';
import semver from 'semver';
import { versionParts, versionSortKey } from '../../server/storage/semver-order.js';

/** Byte-order comparison, as SQLite's BINARY collation does it (keys are ASCII: plain < suffices). */
function binaryCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

const TRICKY = [
  '0.0.0',
  '0.0.1',
  '0.1.0',
  '1.0.0',
  '1.9.0',
  '1.10.0',
  '1.2.3',
  '2.0.0',
  '10.0.0',
  '9.99.999',
  '1.0.0-0',
  '1.0.0-1',
  '1.0.0-2',
  '1.0.0-10',
  '1.0.0-alpha',
  '1.0.0-alpha.1',
  '1.0.0-alpha.beta',
  '1.0.0-beta',
  '1.0.0-beta.2',
  '1.0.0-beta.11',
  '1.0.0-rc.1',
  '1.0.0-alpha-',
  '1.0.0-alpha-1',
  '1.0.0-Alpha',
  '1.0.0-ALPHA',
  '1.0.0--',
  '1.0.0---',
  '1.0.0-0a',
  '1.0.0-a0',
  '1.0.0-0.0',
  '1.0.0-0.a',
  '1.0.0-a.0',
  '1.0.0-9',
  '1.0.0-x.7.z.92',
  '1.0.0+build',
  '1.0.0-rc.1+build.5',
  '4503599627370495.0.0',
  '9007199254740991.9007199254740991.9007199254740991',
];

/** A pseudo-random generator with a fixed seed, so a failure can be reproduced. */
function makeRandom(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

function randomVersions(count: number): string[] {
  const random = makeRandom(42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const num = (): string => pick(['0', '1', '2', '9', '10', '11', '99', '100', String(Math.floor(random() * 100000))]);
  const ident = (): string => pick([num(), 'alpha', 'beta', 'rc', 'a', 'A', 'z', 'x-y', '0a', '-', 'b1', num() + 'x']);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let v = `${num()}.${num()}.${num()}`;
    if (random() < 0.6) {
      const ids = Array.from({ length: 1 + Math.floor(random() * 3) }, ident);
      v += '-' + ids.join('.');
    }
    if (random() < 0.15) v += '+b.' + num();
    out.push(v);
  }
  return out;
}

t.test('keys sort exactly like semver.compare', async (t) => {
  const versions = [...TRICKY, ...randomVersions(400)];
  for (const v of versions) t.ok(semver.valid(v), `test vector ${v} is valid SemVer`);
  const keys = new Map(versions.map((v) => [v, { key: versionSortKey(v), parsed: new semver.SemVer(v) }]));
  let mismatches = 0;
  for (const [a, ka] of keys) {
    for (const [b, kb] of keys) {
      if (sign(binaryCompare(ka.key, kb.key)) !== semver.compare(ka.parsed, kb.parsed)) {
        mismatches++;
        if (mismatches <= 5) t.fail(`${a} vs ${b}: key order disagrees with semver.compare`);
      }
    }
  }
  t.equal(mismatches, 0, `all ${keys.size ** 2} pairs agree`);
});

t.test('keys are ASCII, so byte order and string order agree', async (t) => {
  for (const v of TRICKY) t.match(versionSortKey(v), /^[\x20-\x7e]+$/, v);
});

t.test('a sorted list of keys is SemVer ascending order', async (t) => {
  const versions = ['1.10.0', '1.0.0', '1.0.0-rc.1', '1.9.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-beta.11', '1.0.0-beta.2'];
  const byKey = [...versions].sort((a, b) => binaryCompare(versionSortKey(a), versionSortKey(b)));
  t.same(byKey, ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.9.0', '1.10.0']);
});

t.test('build metadata is ignored', async (t) => {
  t.equal(versionSortKey('1.2.3+a'), versionSortKey('1.2.3'));
  t.equal(versionSortKey('1.2.3-rc.1+x.y'), versionSortKey('1.2.3-rc.1'));
});

t.test('numbers beyond the safe integer range keep their order', async (t) => {
  const big = '123456789012345678901234567890';
  t.ok(binaryCompare(versionSortKey(`${big}.0.0`), versionSortKey(`${big}1.0.0`)) < 0);
  t.ok(binaryCompare(versionSortKey(`1.0.0-${big}`), versionSortKey(`1.0.0-${big}0`)) < 0);
  t.ok(binaryCompare(versionSortKey('9007199254740991.0.0'), versionSortKey(`${big}.0.0`)) < 0);
  t.equal(versionParts(`${big}.2.3`).major, Number.MAX_SAFE_INTEGER, 'major is clamped');
});

t.test('versionParts splits the version', async (t) => {
  t.has(versionParts('1.22.333-rc.1+b'), { major: 1, minor: 22, patch: 333, prerelease: ['rc', '1'] });
  t.same(versionParts('0.0.0').prerelease, []);
});

t.test('rejects anything but strict SemVer 2', async (t) => {
  for (const bad of ['v1.0.0', '1.0', '01.0.0', '1.0.0-01', '', '1.0.0-', `1.0.0-${'1'.repeat(10000)}`]) {
    t.throws(() => versionSortKey(bad), { code: 'invalid_version' }, JSON.stringify(bad.slice(0, 20)));
  }
});
