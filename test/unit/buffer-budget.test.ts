/**
 * server/storage/buffer-budget: the sizes a BufferBudget gives, between its smallest and largest,
 * as transfers open and close and hold bytes, and the bounds it refuses.
 */
import t from 'tap';

import { BufferBudget } from '../../server/storage/buffer-budget.js';

t.test('sizes: the largest while transfers are few, an even share as more open, half the room left under the cap', async (t) => {
  const budget = new BufferBudget(1 << 20, 16 << 10, 16 << 20, 128 << 20);
  t.equal(budget.size(1 << 30), 1 << 20, 'none open yet: the largest');
  for (let i = 0; i < 8; i++) budget.opened();
  t.equal(budget.size(1 << 30), 1 << 20, '8 open: 16 MiB / (2 × 8) is 1 MiB');
  budget.opened();
  t.equal(budget.size(1 << 30), 512 << 10, '9 open: the largest power of two within the share');
  t.equal(budget.size(1000), 1000, 'never more than is left');
  for (let i = 9; i < 100_000; i++) budget.opened();
  t.equal(budget.size(1 << 30), 16 << 10, 'however many are open, never below the smallest');
  for (let i = 0; i < 100_000 - 1; i++) budget.closed();
  t.equal(budget.open, 1);
  t.equal(budget.size(1 << 30), 1 << 20, 'closed again: the largest');
  budget.take(127 << 20);
  t.equal(budget.held, 127 << 20);
  t.equal(budget.size(1 << 30), 512 << 10, 'half of what is left under the cap');
  budget.take(4 << 20);
  t.equal(budget.size(1 << 30), 16 << 10, 'over the cap: the smallest');
  budget.release(131 << 20);
  t.equal(budget.held, 0);
  t.equal(budget.size(1 << 30), 1 << 20, 'released: the largest again');
});

t.test('a smallest size outside 1..largest is refused', async (t) => {
  t.throws(() => new BufferBudget(1 << 10, 1 << 11, 1 << 20, 1 << 20), RangeError);
  t.throws(() => new BufferBudget(1 << 10, 0, 1 << 20, 1 << 20), RangeError);
  t.doesNotThrow(() => new BufferBudget(1 << 10, 1 << 10, 1 << 20, 1 << 20));
});
