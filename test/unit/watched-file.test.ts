/**
 * WatchedFile (server/auth/watched-file.ts), on a clock the test moves: the file is looked at at
 * most once per check interval however many refreshes are asked for (a change made within the
 * interval stays unseen until it has passed), concurrent refreshes share the check in flight, and
 * a change is seen by every refresh called one interval after it, even while an older check is
 * still running.
 */
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DEFAULT_CHECK_INTERVAL_MS, WatchedFile } from '../../server/auth/watched-file.js';

/** A watched file of one line, its parses counted, on a clock at `clock.now`. */
async function watched(t: Test, intervalMs?: number) {
  const path = join(t.testdir({ file: 'one' }), 'file');
  const clock = { now: 0 };
  const parsed: string[] = [];
  const parse = (text: string): string => {
    parsed.push(text);
    return text;
  };
  const file = await WatchedFile.load(path, 'test file', parse, () => undefined, {
    now: () => clock.now,
    ...(intervalMs === undefined ? {} : { intervalMs }),
  });
  return { path, clock, parsed, file };
}

t.test('a change is seen once the check interval since the last look has passed, not before', async (t) => {
  const { path, clock, parsed, file } = await watched(t);
  t.equal(DEFAULT_CHECK_INTERVAL_MS, 1000);
  writeFileSync(path, 'two, longer');
  for (let i = 0; i < 100; i++) {
    clock.now = i * 9;
    await file.refresh();
  }
  t.equal(file.value, 'one', 'within the interval of the load, the file is not looked at');
  clock.now = 1000;
  await file.refresh();
  t.equal(file.value, 'two, longer', 'one interval after the load, it is');
  t.equal(file.generation, 1);
  writeFileSync(path, 'three, longer still');
  clock.now = 1999;
  await file.refresh();
  t.equal(file.value, 'two, longer', 'within the interval of that look, not again');
  clock.now = 2000;
  await file.refresh();
  t.equal(file.value, 'three, longer still');
  t.same(parsed, ['one', 'two, longer', 'three, longer still'], 'each version read once');
});

t.test('concurrent refreshes share one check', async (t) => {
  const { path, clock, parsed, file } = await watched(t);
  writeFileSync(path, 'two, longer');
  clock.now = 5000;
  const first = file.refresh();
  const others = Array.from({ length: 50 }, () => file.refresh());
  t.ok(others.every((p) => p === first), 'every refresh asked while the check runs waits for that check');
  await Promise.all([first, ...others]);
  t.equal(file.value, 'two, longer');
  t.same(parsed, ['one', 'two, longer']);
  t.equal(file.refresh(), file.refresh(), 'once it is done, the next refreshes within the interval share the settled answer');
});

t.test('a check in flight that began an interval ago does not answer a later refresh', async (t) => {
  const { path, clock, file } = await watched(t);
  clock.now = 1000;
  const old = file.refresh();
  clock.now = 2000;
  writeFileSync(path, 'two, longer');
  const fresh = file.refresh();
  t.not(fresh, old, 'a new check, after the one in flight');
  await fresh;
  t.equal(file.value, 'two, longer');
});

t.test('an interval of 0 looks at the file on every refresh', async (t) => {
  const { path, file } = await watched(t, 0);
  writeFileSync(path, 'two, longer');
  await file.refresh();
  t.equal(file.value, 'two, longer');
});

t.test('a rewrite of the same size with its modification time set back is seen (by its change time)', async (t) => {
  const { path, clock, file } = await watched(t);
  const pinned = 1_700_000_000; // whole seconds, which every file system keeps exactly
  utimesSync(path, pinned, pinned);
  clock.now = DEFAULT_CHECK_INTERVAL_MS;
  await file.refresh();
  const before = statSync(path);
  await new Promise((resolve) => setTimeout(resolve, 20));
  writeFileSync(path, 'two');
  utimesSync(path, pinned, pinned);
  const after = statSync(path);
  t.same([after.size, after.mtimeMs, after.ino], [before.size, before.mtimeMs, before.ino], 'the same size, modification time and inode as before');
  clock.now = 2 * DEFAULT_CHECK_INTERVAL_MS;
  await file.refresh();
  t.equal(file.value, 'two');
});
