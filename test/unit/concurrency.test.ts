/**
 * core/concurrency.ts: mapLimit (bounded parallelism) and mapWithinBudget (synchronous work in
 * slices of the event loop, asynchronous once it turns out slow), the latter on a clock of the
 * test's own so that what counts as slow is exact.
 */
import t from 'tap';
import { mapLimit, mapWithinBudget, type MainThreadBudget } from '../../core/concurrency.js';
import { mapLimit as clientMapLimit } from '../../client/lib/index.js';
import { withEventLoopTurns } from '../helpers/event-loop-turns.js';

t.test('mapLimit bounds parallelism and stops after a failure', async (t) => {
  t.equal(clientMapLimit, mapLimit, 'the client library exports it');
  let running = 0;
  let peak = 0;
  const results = await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise<void>((resolve) => setImmediate(resolve));
    running--;
    return n * 2;
  });
  t.same(results, [2, 4, 6, 8, 10, 12, 14], 'results in item order');
  t.equal(peak, 3);

  const started: number[] = [];
  await t.rejects(
    mapLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
      started.push(n);
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (n === 2) throw new Error('two failed');
      return n;
    }),
    { message: 'two failed' },
  );
  t.ok(started.length < 6, `no new task after the failure (started ${started.join(',')})`);
  t.same(await mapLimit([], 4, () => Promise.resolve(1)), []);
});

/** A clock that moves only when `now` calls say so: each item costs the ms it names. */
function costedItems(costs: number[]): { items: number[]; clock: () => number; now: (i: number) => string } {
  let time = 0;
  return {
    items: costs.map((_, i) => i),
    clock: () => time,
    now: (i: number) => {
      time += costs[i] ?? 0;
      return `now ${i}`;
    },
  };
}

const BUDGET: MainThreadBudget = { sliceMs: 2, slowMs: 0.5, limit: 3 };

t.test('mapWithinBudget runs cheap synchronous calls in slices with a turn of the event loop between them', async (t) => {
  const { items, clock, now } = costedItems(Array.from({ length: 100 }, () => 0.125));
  const later: number[] = [];
  const { result: results, turns } = await withEventLoopTurns(() =>
    mapWithinBudget(items, now, async (i) => {
      later.push(i);
      return `later ${i}`;
    }, BUDGET, clock),
  );
  t.same(results, items.map((i) => `now ${i}`), 'every item synchronously, results in item order');
  t.same(later, [], 'none asynchronously');
  // 100 calls of 0.125 ms: slices of 17 calls (the one that ends past 2 ms included), so 5 turns between 6 slices.
  t.equal(turns, 5, 'a turn between slices, none after the last');
  t.same(await mapWithinBudget([], now, async () => 'x', BUDGET, clock), []);
});

t.test('mapWithinBudget hands the rest to the asynchronous task after a slow slice, a window at a time', async (t) => {
  // 30 cheap calls and 2 slow ones fill the first slice (2.3 ms for 32 calls: cheap on average);
  // the next slice is 3 slow ones (the third ends past 2 ms), 1 ms each on average > 0.5 ms.
  const costs = [...Array.from({ length: 30 }, () => 0.01), 1, 1, 1, ...Array.from({ length: 20 }, () => 1)];
  const { items, clock, now } = costedItems(costs);
  let running = 0;
  let peak = 0;
  const later: number[] = [];
  const results = await mapWithinBudget(items, now, async (i) => {
    later.push(i);
    running++;
    peak = Math.max(peak, running);
    await new Promise<void>((resolve) => setImmediate(resolve));
    running--;
    return `later ${i}`;
  }, BUDGET, clock);
  const synchronous = items.length - later.length;
  t.same(results, items.map((i) => (i < synchronous ? `now ${i}` : `later ${i}`)), 'results in item order');
  t.same(later, items.slice(synchronous), 'the items after the slow slice, asynchronously');
  t.equal(synchronous, 35, 'the slow slice ended the synchronous calls');
  t.equal(peak, BUDGET.limit, `${BUDGET.limit} under way at most`);
});

t.test('mapWithinBudget: one call slowed by preemption in a slice of cheap ones does not end them', async (t) => {
  // A call of 1.5 ms among 0.01 ms ones: the slice ends past 2 ms with ~50 calls, averaging ~0.04 ms.
  const costs = Array.from({ length: 500 }, (_, i) => (i === 10 ? 1.5 : 0.01));
  const { items, clock, now } = costedItems(costs);
  let asynchronous = 0;
  await mapWithinBudget(items, now, async () => {
    asynchronous++;
    return 'later';
  }, BUDGET, clock);
  t.equal(asynchronous, 0);
});

t.test('mapWithinBudget throws the first error, synchronous or asynchronous', async (t) => {
  await t.rejects(mapWithinBudget([1, 2, 3], (i) => {
    if (i === 2) throw new Error('two failed now');
    return i;
  }, async (i) => i, BUDGET), { message: 'two failed now' });
  await t.rejects(mapWithinBudget([1, 2, 3], (i) => i, async (i) => {
    if (i === 3) throw new Error('three failed later');
    return i;
  }, { ...BUDGET, sliceMs: -1, slowMs: -1 }), { message: 'three failed later' });
  const forced: number[] = [];
  t.same(await mapWithinBudget([1, 2, 3], (i) => i, async (i) => {
    forced.push(i);
    return i;
  }, { ...BUDGET, sliceMs: -1, slowMs: -1 }), [1, 2, 3], 'a slice makes at least one call, whatever the budget');
  t.same(forced, [2, 3]);
});
