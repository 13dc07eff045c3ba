/**
 * server/storage/read-back-pool: the buffers spooled parts are read back into, lent within the
 * read-back cap first come first served, reused once given back, kept free (for read-backs, and
 * for parts of the same size) only within the cap, and let go once idle; and IdleWatch, the timer
 * that lets them (and an upload's spares) go.
 */
import t from 'tap';

import { IDLE_RELEASE_MS, IdleWatch } from '../../server/storage/idle-watch.js';
import { ReadBackPool, type ReadBackLease } from '../../server/storage/read-back-pool.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a read-back cap must be a positive integer', async (t) => {
  for (const cap of [0, -1, 1.5, Number.NaN]) t.throws(() => new ReadBackPool(cap), RangeError, String(cap));
});

t.test('read-back buffers are lent within the cap, reused once given back, and let go once idle', async (t) => {
  const pool = new ReadBackPool(30);
  const a = await pool.lend(7, 10);
  const b = await pool.lend(10, 10);
  t.same([a.buffer.length, b.buffer.length, pool.lent, pool.allocated], [10, 10, 20, 2], 'buffers of the size asked for, enough for the bytes');
  const c = await pool.lend(10, 10);
  let d: ReadBackLease | undefined;
  const waiting = pool.lend(3, 10).then((lease) => (d = lease));
  await new Promise(setImmediate);
  t.same([d, pool.waiting], [undefined, 1], 'the cap is lent out: the fourth waits');
  b.release();
  b.release();
  await waiting;
  t.equal(d?.buffer, b.buffer, 'a buffer given back is lent to the next, not allocated again');
  t.same([pool.lent, pool.allocated], [30, 3]);
  a.release();
  c.release();
  d?.release();
  t.same([pool.lent, pool.free], [0, 30], 'given back: kept free for the next read-backs');
  const big = await pool.lend(25);
  t.same([big.buffer.length, pool.free, pool.lent], [25, 0, 25], 'a buffer no free one can stand for: free ones let go to make room');
  big.release();
  const huge = await pool.lend(40);
  t.same([huge.buffer.length, pool.lent], [40, 40], 'a buffer larger than the whole cap is lent alone');
  huge.release();
  t.same([pool.lent, pool.free], [0, 0], 'the free one let go for it, and it is not kept: it would hold more than the cap');
  const last = await pool.lend(5);
  last.release();
  t.equal(pool.free, 5);
  await sleep(2 * IDLE_RELEASE_MS + 100);
  t.equal(pool.free, 0, 'idle: the free buffers are let go');
});

t.test('buffers uploads let go are kept free within the read-back cap, for read-backs and for parts of the same size', async (t) => {
  const pool = new ReadBackPool(20);
  const [a, b, c] = [Buffer.alloc(10), Buffer.alloc(10), Buffer.alloc(10)];
  let lent: ReadBackLease | undefined;
  const filler = await pool.lend(10);
  const other = await pool.lend(10);
  const waiting = pool.lend(4).then((lease) => (lent = lease));
  filler.release();
  await waiting;
  t.equal(lent?.buffer, filler.buffer, 'a waiting read-back takes a buffer given back');
  other.release();
  lent?.release();
  t.equal(pool.free, 20);
  pool.keepFree(a);
  t.equal(pool.free, 20, 'no room within the read-back cap: dropped');
  t.equal(pool.takeFree(7), undefined, 'only a buffer of exactly the size asked for is taken for a part');
  const taken = pool.takeFree(10);
  t.ok(taken === filler.buffer || taken === other.buffer, 'a free buffer of the size');
  t.equal(pool.free, 10, 'and it no longer counts: the part\'s reservation covers it');
  pool.keepFree(b);
  t.equal(pool.free, 20, 'room again: kept');
  pool.keepFree(c);
  t.equal(pool.free, 20);
});

t.test('an IdleWatch fires once a whole period passes without a touch while not busy, and not after clear', async (t) => {
  let fired = 0;
  let busy = false;
  const watch = new IdleWatch(() => fired++, () => busy);
  watch.arm();
  watch.arm();
  await sleep(IDLE_RELEASE_MS * 0.6);
  watch.touch();
  await sleep(IDLE_RELEASE_MS * 0.6);
  t.equal(fired, 0, 'touched within the first period: it waits another');
  await sleep(IDLE_RELEASE_MS * 1.6);
  t.equal(fired, 1, 'then fires, once (armed twice, one timer)');
  busy = true;
  watch.arm();
  await sleep(IDLE_RELEASE_MS * 2.3);
  t.equal(fired, 1, 'not while busy');
  busy = false;
  await sleep(IDLE_RELEASE_MS * 1.3);
  t.equal(fired, 2, 'once no longer busy');
  watch.arm();
  watch.clear();
  await sleep(IDLE_RELEASE_MS * 2.3);
  t.equal(fired, 2, 'cleared: it does not fire');
});
