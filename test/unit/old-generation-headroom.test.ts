/**
 * server/old-generation-headroom.ts: the growing factor it picks for a live size, and what it
 * measures. What the server gains by it is tested end to end (test/e2e/old-generation-headroom.test.ts):
 * under tap's loader a process's heap is too large to show it.
 */
import t from 'tap';
import { headroomPercent, MIN_LIMIT_BYTES, oldGenerationBytes } from '../../server/old-generation-headroom.js';

const MiB = 2 ** 20;

t.test('headroomPercent: the factor that puts a small heap\'s limit at the floor, V8 its own above that', async (t) => {
  t.equal(MIN_LIMIT_BYTES, 48 * MiB);
  t.equal(headroomPercent(8 * MiB), 500, '8 MiB live: 6 × 8 = 48 MiB');
  t.equal(headroomPercent(12 * MiB), 300);
  t.equal(headroomPercent(10 * MiB, 40 * MiB), 300, 'another floor');
  t.equal(headroomPercent(7 * MiB), 586, 'rounded up, never under the floor');
  t.equal(headroomPercent(23 * MiB), 109);
  t.equal(headroomPercent(24 * MiB), 0, 'where doubling reaches the floor, V8 decides');
  t.equal(headroomPercent(400 * MiB), 0);
  t.equal(headroomPercent(0), 0, 'nothing measured: V8 decides');
});

t.test('oldGenerationBytes: the heap in use but the young generation', async (t) => {
  const bytes = oldGenerationBytes();
  t.ok(bytes > MiB, `${(bytes / MiB).toFixed(1)} MiB`);
  t.ok(bytes <= process.memoryUsage().heapUsed, 'no more than the whole heap in use');
});
