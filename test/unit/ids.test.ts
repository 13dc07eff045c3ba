import t from 'tap';
import { canonicalId, nameProblem, parseId, isStrictSemver } from '../../core/ids/bindle-id.js';

t.test('canonical id is sha256 of name/version', async (t) => {
  t.equal(
    canonicalId({ name: 'enterprise.com/warpcore', version: '1.0.0' }),
    '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd',
  );
});

t.test('names', async (t) => {
  for (const good of ['a', 'enterprise.com/warpcore', 'käse/1', 'a_b-c.d/e', 'x/y/z']) {
    t.equal(nameProblem(good), undefined, good);
  }
  t.equal(nameProblem('x'.repeat(512)), undefined, '512 bytes is the limit');
  t.equal(nameProblem('.a/..b/c.'), undefined, 'dots inside a segment are fine');
  for (const bad of [
    '', '../x', 'a//b', '/a', 'a/', 'a@b', 'a b', 'a/./b', 'a%2f', 'a\\b', 'a\u0000b', 'x'.repeat(513), '.', '..', 'a/..', './a',
    'ä'.repeat(257),
  ]) {
    t.type(nameProblem(bad), 'string', JSON.stringify(bad));
  }
});

t.test('strict semver', async (t) => {
  for (const good of ['1.0.0', '0.1.0-alpha.1', '1.2.3+build.5', '10.20.30-rc.1+meta']) t.ok(isStrictSemver(good), good);
  for (const bad of ['v1.0.0', '01.0.0', '1.0', '1.0.0-01', '1.0.0.0', '', ' 1.0.0']) t.notOk(isStrictSemver(bad), bad);
});

t.test('parseId splits at the last slash', async (t) => {
  t.same(parseId('enterprise.com/warpcore/1.0.0'), { name: 'enterprise.com/warpcore', version: '1.0.0' });
  t.same(parseId('a/b/c/d/0.1.0-rc.1+build.7'), { name: 'a/b/c/d', version: '0.1.0-rc.1+build.7' }, 'several slashes');
  t.same(parseId('x/1.0.0'), { name: 'x', version: '1.0.0' }, 'one slash');
  for (const bad of ['nover', '/1.0.0', 'a/', 'a/v1.0.0', '../x/1.0.0', '', '/', 'a//1.0.0', 'a/1.0.0/', 'a/1.0.0@sha']) {
    t.throws(() => parseId(bad), { name: 'BindleError' }, bad);
  }
});

t.test('names have one spelling: NFC only, one script per segment, no leading combining mark', async (t) => {
  for (const ok of ['example.com/käse', 'example.com/яблоко', 'ελληνικά/x', 'example.com/日本語カタカナ', 'example.com/東京tokyo', 'example.com/서울-1', 'a/b-1.0_x']) {
    t.equal(nameProblem(ok), undefined, ok);
  }
  const bad: Array<[string, RegExp]> = [
    ['example.com/ka\u0308se', /NFC/],
    ['example.com/\u0430pple', /mixes scripts \(Cyrillic, Latin\)/],
    ['example.com/pаypal', /mixes scripts/],
    ['ex\u03bfmple.com/x', /mixes scripts \(Latin, Greek\)/],
    ['example.com/\u0301', /must not start with a combining mark/],
    ['example.com/\u0308a', /must not start with a combining mark/],
  ];
  for (const [name, why] of bad) t.match(nameProblem(name), why, JSON.stringify(name));
});
