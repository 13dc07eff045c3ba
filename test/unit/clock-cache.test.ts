/**
 * ClockCache: bounded by entries and by weight; eviction is oldest first, except that an entry hit
 * since it was queued is spared once (moved to the end, its mark cleared) and the entry being set
 * is never evicted; over the weight budget only, `shed` keeps a lighter value instead of evicting.
 */
import t from 'tap';
import { ClockCache } from '../../server/storage/clock-cache.js';

function cache(maxEntries: number, maxWeight: number): ClockCache<string, string> {
  return new ClockCache<string, string>({ maxEntries, maxWeight, weigh: (value) => value.length });
}

t.test('over the entry bound the oldest goes; a hit spares it once', async (t) => {
  const c = cache(3, 100);
  c.set('a', 'x');
  c.set('b', 'x');
  c.set('c', 'x');
  t.equal(c.get('a'), 'x', 'a is hit, so it is marked');
  c.set('d', 'x');
  t.same(['a', 'b', 'c', 'd'].map((k) => c.peek(k) !== undefined), [true, false, true, true], 'b went, not the marked a');
  c.set('e', 'x');
  t.equal(c.peek('c'), undefined, 'then c: a was requeued after c when spared');
  t.equal(c.peek('a'), 'x');
  c.set('f', 'x');
  t.equal(c.peek('d'), undefined, 'then d');
  c.set('g', 'x');
  t.equal(c.peek('a'), undefined, 'then a: it was spared once only, its mark cleared');
  t.equal(c.size, 3);
});

t.test('peek does not mark', async (t) => {
  const c = cache(2, 100);
  c.set('a', 'x');
  c.set('b', 'x');
  c.peek('a');
  c.set('c', 'x');
  t.equal(c.peek('a'), undefined);
  t.equal(c.peek('b'), 'x');
});

t.test('weight is tracked through set, replace, delete, clear; the entry being set never goes', async (t) => {
  const c = cache(10, 10);
  c.set('a', 'aaaa');
  c.set('b', 'bbbb');
  t.equal(c.weight, 8);
  c.set('a', 'aa');
  t.equal(c.weight, 6, 'a replaced');
  t.equal(c.get('b'), 'bbbb', 'b marked');
  c.set('c', 'cccccccc');
  t.equal(c.peek('c'), 'cccccccc', 'the new entry stays though it alone fills the budget');
  t.equal(c.peek('a'), undefined, 'a went (after b was spared)');
  t.equal(c.peek('b'), undefined, 'then b, its mark cleared');
  t.equal(c.weight, 8);
  t.equal(c.set('d', 'x'.repeat(11)), false, 'a value heavier than the whole budget is not kept');
  t.equal(c.peek('d'), undefined);
  t.equal(c.set('c', 'x'.repeat(11)), false, 'nor is it kept when it replaces one');
  t.equal(c.peek('c'), undefined, 'and the old value under its key is dropped');
  t.equal(c.weight, 0);
  c.set('e', 'ee');
  t.equal(c.delete('e'), true);
  t.equal(c.delete('e'), false);
  c.set('f', 'ff');
  c.clear();
  t.equal(c.size, 0);
  t.equal(c.weight, 0);
});

t.test('shed keeps a lighter value over the weight budget, but not over the entry bound', async (t) => {
  const shedding = new ClockCache<string, { size: number; bytes?: string }>({
    maxEntries: 3,
    maxWeight: 6,
    weigh: (v) => v.bytes?.length ?? 0,
    shed: (v) => ({ size: v.size }),
  });
  shedding.set('a', { size: 4, bytes: 'aaaa' });
  shedding.set('b', { size: 4, bytes: 'bbbb' });
  t.same(shedding.peek('a'), { size: 4 }, 'a lost its bytes, kept its size');
  t.same(shedding.peek('b'), { size: 4, bytes: 'bbbb' });
  t.equal(shedding.weight, 4);
  shedding.set('c', { size: 1 });
  shedding.set('d', { size: 1 });
  t.equal(shedding.size, 3, 'over the entry bound an entry is evicted, not shed');
  t.equal(shedding.peek('a'), undefined);
});
