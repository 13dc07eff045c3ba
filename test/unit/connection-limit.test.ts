/**
 * The connection cap's default: half the open-file limit left after the reserve (a socket and a
 * file per connection), within its bounds, read from /proc/self/limits.
 */
import { existsSync } from 'node:fs';
import t from 'tap';
import {
  DESCRIPTOR_RESERVE,
  MAX_DEFAULT_CONNECTIONS,
  MIN_DEFAULT_CONNECTIONS,
  defaultMaxConnections,
  openFileLimit,
  parseOpenFileLimit,
} from '../../server/http/connection-limit.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                1048576              files
Max locked memory         8388608              8388608              bytes
`;

t.test('the soft open-file limit is read from /proc/self/limits text', async (t) => {
  t.equal(parseOpenFileLimit(LIMITS), 20000);
  t.equal(parseOpenFileLimit(LIMITS.replace('20000     ', 'unlimited ')), undefined, 'unlimited is no number');
  t.equal(parseOpenFileLimit('Max cpu time unlimited unlimited seconds\n'), undefined, 'no such line');
});

t.test('the default leaves a socket and a file per connection within the limit, after the reserve', async (t) => {
  t.equal(defaultMaxConnections(20000), (20000 - DESCRIPTOR_RESERVE) / 2);
  t.ok(2 * defaultMaxConnections(20000) + DESCRIPTOR_RESERVE <= 20000);
  t.equal(defaultMaxConnections(1024), 256, "a shell's usual 1024");
  t.equal(defaultMaxConnections(100), MIN_DEFAULT_CONNECTIONS, 'never below the floor');
  t.equal(defaultMaxConnections(1 << 20), MAX_DEFAULT_CONNECTIONS, 'a huge limit is capped (connections cost memory too)');
  t.equal(defaultMaxConnections(undefined), MAX_DEFAULT_CONNECTIONS, 'an unknown limit gets the cap');
});

t.test("this process's limit, where /proc exists", { skip: existsSync('/proc/self/limits') ? false : 'no /proc (not Linux)' }, async (t) => {
  const limit = openFileLimit();
  t.ok(limit !== undefined && limit > 0, `read ${String(limit)}`);
});
