/**
 * Compaction once the server goes idle after a busy spell (server/heap-compaction.ts): the
 * decision (IdleCompaction) interval by interval, and compactWhenIdle on a real HTTP server
 * counting its requests.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { compactWhenIdle, IdleCompaction, unusedHeapBytes, type IdleReport } from '../../server/heap-compaction.js';

/** An IdleCompaction with `unused` bytes unused, counting its compactions in `count.n`. */
function decision(unused: { bytes: number }, count: { n: number }, reports: IdleReport[] = []): IdleCompaction {
  return new IdleCompaction({
    quietRequests: 2,
    minUnusedBytes: 1000,
    unusedBytes: () => unused.bytes,
    compact: () => {
      count.n += 1;
    },
    onIdle: (report) => reports.push(report),
  });
}

function requests(idle: IdleCompaction, n: number): void {
  for (let i = 0; i < n; i++) idle.request();
}

t.test('a quiet interval after a busy one compacts once; quiet ones after it do not', (t) => {
  const count = { n: 0 };
  const reports: IdleReport[] = [];
  const idle = decision({ bytes: 5000 }, count, reports);
  t.equal(idle.check(), false, 'never busy: nothing');
  requests(idle, 3);
  t.equal(idle.check(), false, 'a busy interval (3 > 2 requests)');
  requests(idle, 2);
  t.equal(idle.check(), true, 'a quiet one after it (2 requests, a probe or two): compacts');
  t.equal(count.n, 1, 'once');
  t.match(reports, [{ unusedBytes: 5000, compacted: true, ms: Number }], 'reported with the unused bytes before');
  t.equal(idle.check(), false, 'still quiet: not again');
  requests(idle, 1);
  t.equal(idle.check(), false);
  t.equal(count.n, 1);
  t.end();
});

t.test('busy intervals in a row never compact; the first quiet one does', (t) => {
  const count = { n: 0 };
  const idle = decision({ bytes: 5000 }, count);
  for (let i = 0; i < 5; i++) {
    requests(idle, 10);
    t.equal(idle.check(), false);
  }
  t.equal(count.n, 0);
  t.equal(idle.check(), true);
  t.equal(count.n, 1);
  t.end();
});

t.test('too little of the heap unused: no compaction, and none until another busy spell', (t) => {
  const count = { n: 0 };
  const unused = { bytes: 999 };
  const reports: IdleReport[] = [];
  const idle = decision(unused, count, reports);
  requests(idle, 3);
  idle.check();
  t.equal(idle.check(), false, 'quiet, but only 999 bytes unused');
  t.same(reports, [{ unusedBytes: 999, compacted: false, ms: 0 }], 'reported as not compacted');
  unused.bytes = 5000;
  t.equal(idle.check(), false, 'the busy spell was used up by that check');
  requests(idle, 3);
  idle.check();
  t.equal(idle.check(), true, 'after another busy spell');
  t.equal(count.n, 1);
  t.end();
});

t.test('the default measure of the unused heap is what V8 reports', (t) => {
  const unused = unusedHeapBytes();
  t.ok(unused > 0 && unused < 2 ** 40, `${unused} bytes`);
  t.end();
});

t.test('compactWhenIdle counts a real server\'s requests and compacts after its load stops', async (t) => {
  const server = createServer((_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const count = { n: 0 };
  const stop = compactWhenIdle(server, {
    idleMs: 100,
    quietRequests: 1,
    minUnusedBytes: 0,
    compact: () => {
      count.n += 1;
    },
  });
  t.teardown(stop);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  for (let i = 0; i < 20; i++) await (await fetch(url)).text();
  for (const deadline = Date.now() + 10_000; count.n === 0 && Date.now() < deadline; ) await sleep(20);
  t.ok(count.n >= 1, 'compacted once the requests stopped');
  const after = count.n;
  await sleep(600);
  t.equal(count.n, after, 'and not again without more load');
  stop();
  for (let i = 0; i < 20; i++) await (await fetch(url)).text();
  await sleep(400);
  t.equal(count.n, after, 'stopped: requests are no longer counted and nothing compacts');
});
