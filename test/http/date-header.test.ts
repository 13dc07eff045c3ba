/**
 * Every reply carries one Date header (RFC 9110 §6.6.1) made by server/http/date-header.ts, not
 * by Node through `Date.prototype.toUTCString`, whose first call keeps ICU's time-zone data
 * resident in an otherwise idle server.
 */
import t, { type Test } from 'tap';
import { formatHttpDate } from '../../server/http/date-header.js';
import { rawExchange } from '../helpers/raw-http.js';
import { listenTestApp, makeTestApp } from '../helpers/test-app.js';

/** Counts calls of `Date.prototype.toUTCString` until the test ends. */
function countToUTCString(t: Test): { calls: number } {
  const counter = { calls: 0 };
  const original = Object.getOwnPropertyDescriptor(Date.prototype, 'toUTCString');
  if (original === undefined) throw new Error('Date.prototype.toUTCString is missing');
  const counting = function (this: Date): string {
    counter.calls++;
    return (original.value as (this: Date) => string).call(this);
  };
  Object.defineProperty(Date.prototype, 'toUTCString', { ...original, value: counting });
  t.teardown(() => Object.defineProperty(Date.prototype, 'toUTCString', original));
  return counter;
}

/** Whether `header` is an HTTP date of a second between `before` and `after` (ms). */
function dateWithin(header: string | undefined, before: number, after: number): boolean {
  for (let second = Math.floor(before / 1000); second <= Math.floor(after / 1000); second++) {
    if (header === formatHttpDate(second * 1000)) return true;
  }
  return false;
}

t.test('route replies, errors and 404s carry the date, made without toUTCString', async (t) => {
  const counter = countToUTCString(t);
  const ta = await makeTestApp(t);
  const before = Date.now();
  const replies = [
    await ta.app.inject({ url: '/healthz' }),
    await ta.app.inject({ url: '/v1/_i/example.com/missing/1.0.0' }),
    await ta.app.inject({ url: '/no/such/route' }),
    await ta.app.inject({ method: 'POST', url: '/v1/_i', payload: 'not toml [' }),
  ];
  const after = Date.now();
  t.same(replies.map((reply) => reply.statusCode), [200, 404, 404, 400]);
  for (const reply of replies) {
    t.ok(dateWithin(reply.headers.date, before, after), `${reply.statusCode}: Date ${String(reply.headers.date)}`);
  }
  t.equal(counter.calls, 0, 'Date.prototype.toUTCString was never called');
});

t.test('over a connection, each reply has exactly one Date header', async (t) => {
  const server = await listenTestApp(t);
  const port = Number(new URL(server.url).port);
  const before = Date.now();
  const result = await rawExchange(port, ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  const after = Date.now();
  const heads = result.text.match(/HTTP\/1\.1 \d{3}[\s\S]*?\r\n\r\n/g) ?? [];
  t.equal(heads.length, 2, 'two replies');
  for (const head of heads) {
    const dates = head.split('\r\n').filter((line) => /^date:/i.test(line));
    t.equal(dates.length, 1, `one Date header in: ${head.split('\r\n')[0] ?? ''}`);
    t.ok(dateWithin(dates[0]?.replace(/^date:\s*/i, ''), before, after), `a date of now: ${dates[0] ?? ''}`);
  }
});
