/**
 * server/http/date-header.ts: the HTTP date it formats is exactly `toUTCString`'s (RFC 9110's
 * IMF-fixdate), and it is formatted once per second.
 */
import t from 'tap';
import { formatHttpDate, httpDate } from '../../server/http/date-header.js';

t.test('an HTTP date is what toUTCString gives', async (t) => {
  const times = [
    0, // the epoch
    Date.UTC(1994, 10, 6, 8, 49, 37), // RFC 9110's example: Sun, 06 Nov 1994 08:49:37 GMT
    Date.UTC(2000, 1, 29, 23, 59, 59, 999), // a leap day, its last millisecond
    Date.UTC(2026, 11, 31, 23, 59, 59), // the last second of a year
    Date.UTC(2027, 0, 1, 0, 0, 0), // and the first of the next
    Date.UTC(9999, 11, 31, 23, 59, 59),
    Date.now(),
  ];
  // Spread over 1000..9999 with a fixed generator: every weekday, month and two-digit field.
  let seed = 12345;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    times.push(Date.UTC(1000, 0, 1) + Math.floor((seed / 2 ** 31) * (Date.UTC(9999, 11, 31) - Date.UTC(1000, 0, 1))));
  }
  const wrong = times.filter((time) => formatHttpDate(time) !== new Date(time).toUTCString());
  t.same(wrong.map((time) => [time, formatHttpDate(time), new Date(time).toUTCString()]), [], 'every time formats as toUTCString does');
  t.equal(formatHttpDate(Date.UTC(1994, 10, 6, 8, 49, 37)), 'Sun, 06 Nov 1994 08:49:37 GMT');
});

t.test('httpDate formats the second of the time it is given, once per second', async (t) => {
  const second = Date.UTC(2026, 11, 3, 12, 0, 0);
  t.equal(httpDate(second), 'Thu, 03 Dec 2026 12:00:00 GMT');
  t.equal(httpDate(second + 999), 'Thu, 03 Dec 2026 12:00:00 GMT', 'the same second: the same text');
  t.equal(httpDate(second + 1000), 'Thu, 03 Dec 2026 12:00:01 GMT', 'the next second: the next text');
  t.equal(httpDate(second - 1), 'Thu, 03 Dec 2026 11:59:59 GMT', 'and back');
  const now = Date.now();
  const text = httpDate();
  t.ok([formatHttpDate(now), formatHttpDate(Date.now())].includes(text), 'without a time: now');
});
