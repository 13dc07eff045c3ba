/**
 * server/http/query-reply: a `/_q` page rendered from per-invoice fragments is byte for byte
 * the document rendered whole (TOML and JSON, empty and full pages, invoices with parcels and
 * signatures); a cached fragment is never sent for a document that is no longer the stored one
 * (a yank); the cache stays within its bound; the shared render queue keeps FIFO order, passes
 * errors on, and lets other callbacks run between its slices; a request whose client has gone
 * while it waited at the admission gate is never read from the index.
 */
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import t from 'tap';
import { renderDocument } from '../../core/codec/document-codec.js';
import { AdmissionGate } from '../../server/http/admission-gate.js';
import { FragmentCache, QueryReplies, SlicedQueue, type QueryPage } from '../../server/http/query-reply.js';
import type { StoredInvoice } from '../../server/storage/invoice-index.js';
import { makeEntry } from '../contract/invoice-index-contract.js';

const SHA = (n: number): string => n.toString(16).padStart(64, '0');

function pageOf(invoices: StoredInvoice[], timestamp?: number): QueryPage {
  return {
    query: 'warp "core"',
    strict: false,
    offset: 0,
    limit: 50,
    total: invoices.length,
    more: false,
    yanked: true,
    ...(timestamp !== undefined ? { timestamp } : {}),
    invoices,
  };
}

/** What the reply was before fragments: the whole document rendered at once. */
function whole(page: QueryPage, format: 'toml' | 'json'): string {
  return renderDocument({ ...page, invoices: page.invoices.map((s) => s.invoice) }, format);
}

const ENTRIES = [
  makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'The "warp" core\nof it', authors: ['Scotty <s@e.com>'], parcels: [SHA(1), SHA(2)] }),
  makeEntry('enterprise.com/transporter', '0.3.0', { yanked: true, parcels: [SHA(3)] }),
  makeEntry('voyager.com/ünïcode', '2.0.0-alpha.1'),
];

t.test('a page renders byte for byte like the whole document, in TOML and JSON', async (t) => {
  const replies = new QueryReplies();
  for (const invoices of [[], ENTRIES.slice(0, 1), ENTRIES]) {
    for (const timestamp of [undefined, 1_700_000_000]) {
      const page = pageOf(invoices, timestamp);
      for (const format of ['toml', 'json'] as const) {
        for (const pass of ['rendered', 'cached']) {
          const text = Buffer.concat(await replies.render(page, format)).toString('utf8');
          t.equal(text, whole(page, format), `${invoices.length} invoices, ${format}, ${timestamp ?? 'no timestamp'}, ${pass}`);
        }
      }
    }
  }
});

t.test('a cached fragment is not sent once the stored document changed (a yank)', async (t) => {
  const replies = new QueryReplies();
  const before = makeEntry('enterprise.com/warpcore', '1.0.0', { parcels: [SHA(1)] });
  const after = makeEntry('enterprise.com/warpcore', '1.0.0', { parcels: [SHA(1)], yanked: true });
  t.equal(before.canonicalId, after.canonicalId);
  const first = Buffer.concat(await replies.render(pageOf([before]), 'toml')).toString('utf8');
  const invoiceYanked = /\[\[invoices\]\][^]*yanked = true/;
  t.notMatch(first, invoiceYanked);
  const second = Buffer.concat(await replies.render(pageOf([after]), 'toml')).toString('utf8');
  t.match(second, invoiceYanked, 'the yanked document is rendered');
  t.equal(second, whole(pageOf([after]), 'toml'));
});

t.test('concurrent replies of one page render each invoice once', async (t) => {
  class CountingQueue extends SlicedQueue {
    jobs = 0;
    override run<T>(job: () => T): Promise<T> {
      this.jobs += 1;
      return super.run(job);
    }
  }
  const queue = new CountingQueue();
  const replies = new QueryReplies(new FragmentCache(), queue);
  const page = pageOf(ENTRIES);
  const texts = await Promise.all(Array.from({ length: 8 }, () => replies.render(page, 'toml')));
  t.equal(queue.jobs, ENTRIES.length, `${queue.jobs} renders for 8 concurrent replies of ${ENTRIES.length} invoices`);
  for (const parts of texts) t.equal(Buffer.concat(parts).toString('utf8'), whole(page, 'toml'));
});

t.test('FragmentCache keeps at most its bytes, the least recently used going first', async (t) => {
  const cache = new FragmentCache(100);
  const [a, b, c] = [makeEntry('x.com/a', '1.0.0'), makeEntry('x.com/b', '1.0.0'), makeEntry('x.com/c', '1.0.0')] as const;
  cache.set(a, Buffer.alloc(40));
  cache.set(b, Buffer.alloc(40));
  t.ok(cache.get(a), 'a is used, so b is now the oldest');
  cache.set(c, Buffer.alloc(40));
  t.equal(cache.size, 2);
  t.equal(cache.get(b), undefined, 'b went first');
  t.ok(cache.get(a));
  t.ok(cache.get(c));
  cache.set(makeEntry('x.com/big', '1.0.0'), Buffer.alloc(101));
  t.equal(cache.size, 2, 'a fragment over the whole bound is not kept');
});

t.test('SlicedQueue: FIFO, errors passed on, other callbacks run between slices', async (t) => {
  const queue = new SlicedQueue(4);
  const order: string[] = [];
  const busy = (ms: number): void => {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // hold the thread, like rendering a big invoice
    }
  };
  const jobs = Array.from({ length: 6 }, (_, i) =>
    queue.run(() => {
      busy(3);
      order.push(`job${i}`);
      return i;
    }),
  );
  setImmediate(() => order.push('other'));
  const failing = queue.run(() => {
    throw new Error('render failed');
  });
  t.same(await Promise.all(jobs), [0, 1, 2, 3, 4, 5], 'each job resolves with its result');
  await t.rejects(failing, { message: 'render failed' });
  t.same(order.filter((o) => o !== 'other'), ['job0', 'job1', 'job2', 'job3', 'job4', 'job5'], 'in the order queued');
  const other = order.indexOf('other');
  t.ok(other > 0 && other < 5, `another callback ran between slices (at ${other} of ${order.join(', ')})`);
});

t.test('a queued request whose client has gone is dropped: its page is never read', async (t) => {
  const gate = new AdmissionGate(1);
  const replies = new QueryReplies(new FragmentCache(), new SlicedQueue(), gate);
  let release = (): void => undefined;
  const blocker = gate.run(() => new Promise<void>((resolve) => {
    release = resolve;
  }));
  let loads = 0;
  const closed: Array<Promise<void>> = [];
  const app = Fastify();
  app.get('/_q', (request, reply) => {
    closed.push(new Promise((resolve) => request.raw.once('close', () => resolve())));
    return replies.send(request, reply, () => {
      loads += 1;
      return Promise.resolve(pageOf(ENTRIES));
    }, false);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const waitFor = async (what: string, done: () => boolean): Promise<void> => {
    for (let i = 0; i < 2000 && !done(); i++) await sleep(10);
    if (!done()) throw new Error(`timed out waiting for ${what}`);
  };

  await waitFor('the blocking job to start', () => gate.running === 1);
  const gone = connect(address.port, '127.0.0.1');
  gone.on('error', () => undefined);
  gone.write('GET /_q HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await waitFor('the request to queue', () => gate.waiting === 1);
  gone.destroy();
  await waitFor('the request to arrive', () => closed.length === 1);
  await closed[0];

  const stays = connect(address.port, '127.0.0.1');
  let answer = '';
  stays.on('data', (chunk: Buffer) => {
    answer += chunk.toString('utf8');
  });
  stays.write('GET /_q HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n');
  const ended = new Promise<void>((resolve) => stays.once('close', () => resolve()));
  await waitFor('the second request to queue', () => gate.waiting === 2);
  release();
  await blocker;
  await ended;
  t.match(answer, /^HTTP\/1\.1 200 /, 'the request whose client stayed is answered');
  t.match(answer, new RegExp(`"total":${ENTRIES.length}`));
  t.equal(loads, 1, 'only its page was read: the gone client\'s request was dropped unread');
  t.equal(gate.running, 0);
  t.equal(gate.waiting, 0);
});
