/**
 * The Date header of every reply Fastify sends (RFC 9110 §6.6.1: an origin server with a clock
 * sends one), formatted here as an IMF-fixdate from the UTC fields of the time, once per
 * second. Node would add the same header itself, but through `Date.prototype.toUTCString`,
 * whose first call loads V8's date cache and with it ICU's time-zone data: ~0.85 MiB of node's
 * binary stays resident for good in a server that otherwise never touches it (measured on an
 * idle server, docs/performance.md). Node sees the header among the reply's and adds none; a
 * reply sent outside Fastify (the parser's errors, `Expect` refusals) still gets Node's own.
 */
import type { FastifyInstance } from 'fastify';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * `time` (ms since the epoch, a year from 1000 to 9999) as an HTTP date, e.g.
 * `Sun, 06 Nov 1994 08:49:37 GMT`: what `new Date(time).toUTCString()` gives, without it.
 */
export function formatHttpDate(time: number): string {
  const date = new Date(time);
  return `${DAYS[date.getUTCDay()]}, ${twoDigits(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
    `${twoDigits(date.getUTCHours())}:${twoDigits(date.getUTCMinutes())}:${twoDigits(date.getUTCSeconds())} GMT`;
}

let cachedSecond = Number.NaN;
let cachedDate = '';

/** The HTTP date of `now`, formatted once per second. */
export function httpDate(now: number = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedDate = formatHttpDate(second * 1000);
    cachedSecond = second;
  }
  return cachedDate;
}

/** Gives every reply of `app` (every route's and its 404s) a Date header from `httpDate`. */
export function registerDateHeader(app: FastifyInstance): void {
  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('date', httpDate());
    done();
  });
}
