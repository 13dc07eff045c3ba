/**
 * Unit tests of the benchmarks' round order (bench/lib/baselines.ts): what is measured side by
 * side takes turns to go first, in `interleave` and in the cases that order their own rounds.
 */
import t from 'tap';
import { inRoundOrder, interleave } from '../../bench/lib/baselines.js';

t.test('inRoundOrder: as given in even rounds, reversed in odd ones; the input is left alone', async (t) => {
  const items = ['cli', 'other build', 'direct'] as const;
  t.same(inRoundOrder(items, 0), ['cli', 'other build', 'direct']);
  t.same(inRoundOrder(items, 1), ['direct', 'other build', 'cli']);
  t.same(inRoundOrder(items, 2), ['cli', 'other build', 'direct']);
  t.same(items, ['cli', 'other build', 'direct']);
  const firsts = [0, 1, 2, 3].map((r) => inRoundOrder(items, r)[0]);
  t.same(firsts, ['cli', 'direct', 'cli', 'direct'], 'over an even number of rounds each end goes first as often as last');
});

t.test('interleave: one warm-up round, then rounds in alternating order; results in round order', async (t) => {
  const calls: string[] = [];
  let n = 0;
  const contender = (name: string) => ({
    name,
    measure: async (): Promise<number> => {
      calls.push(name);
      return ++n;
    },
  });
  const logged: string[] = [];
  const results = await interleave([contender('a'), contender('b')], 3, (m) => logged.push(m), 'x/s');
  t.same(calls, ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']);
  t.same(results.get('a'), [3, 6, 7], 'the warm-up round is not recorded');
  t.same(results.get('b'), [4, 5, 8]);
  t.equal(logged.length, 3);
});
