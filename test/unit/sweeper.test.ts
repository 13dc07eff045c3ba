/**
 * The Sweeper every parcel store runs its sweep through: a sweep asked for while one is under way
 * gets the next one (shared by every caller meanwhile), background failures are reported and not
 * after close, and close stops the sweep under way and the one queued behind it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { Sweeper } from '../../server/storage/parcel-store.js';

/** A sweep that records each run and waits, at its one step, until released or aborted. */
function gatedSweep(): {
  runs: string[];
  release: () => void;
  once: (signal: AbortSignal) => Promise<void>;
  started: () => Promise<void>;
} {
  const runs: string[] = [];
  let release = (): void => undefined;
  let onStart = (): void => undefined;
  return {
    runs,
    release: () => release(),
    started: () =>
      new Promise<void>((resolve) => {
        onStart = resolve;
      }),
    once: (signal) => {
      runs.push('start');
      onStart();
      return new Promise<void>((resolve, reject) => {
        release = () => {
          runs.push('end');
          resolve();
        };
        signal.addEventListener('abort', () => {
          runs.push('aborted');
          reject(new Error('stopped by close'));
        });
      });
    },
  };
}

t.test('a sweep asked for during one runs after it, once for every caller meanwhile', async (t) => {
  const gate = gatedSweep();
  const sweeper = new Sweeper(gate.once, 'store closed');
  t.teardown(() => sweeper.close());
  const started = gate.started();
  const first = sweeper.sweep();
  await started;
  const second = sweeper.sweep();
  const third = sweeper.sweep();
  t.equal(second, third, 'callers meanwhile share one next sweep');
  t.not(second, first, 'which is not the sweep under way');
  const secondStarted = gate.started();
  gate.release();
  await first;
  await secondStarted;
  t.same(gate.runs, ['start', 'end', 'start'], 'the next sweep starts when the first ends');
  gate.release();
  await second;
  t.same(gate.runs, ['start', 'end', 'start', 'end']);
  const fourth = sweeper.sweep();
  t.not(fourth, second, 'with none under way, a call starts a new sweep');
  gate.release();
  await fourth;
});

t.test('the next sweep runs even when the one before it failed', async (t) => {
  let calls = 0;
  let fail = (): void => undefined;
  const sweeper = new Sweeper(
    () =>
      new Promise<void>((resolve, reject) => {
        calls += 1;
        if (calls === 1) fail = () => reject(new Error('disk gone'));
        else resolve();
      }),
    'store closed',
  );
  t.teardown(() => sweeper.close());
  const first = sweeper.sweep();
  const next = sweeper.sweep();
  fail();
  await t.rejects(first, { message: 'disk gone' }, "the failed sweep's caller gets its error");
  await next;
  t.equal(calls, 2, 'the caller who asked meanwhile got a sweep of its own');
});

t.test('close stops the sweep under way, never starts the queued one, and refuses later sweeps', async (t) => {
  const gate = gatedSweep();
  const sweeper = new Sweeper(gate.once, 'store closed');
  const started = gate.started();
  const running = sweeper.sweep();
  await started;
  const queued = sweeper.sweep();
  await sweeper.close();
  await t.rejects(running, { code: 'unavailable', message: 'store closed' }, 'the sweep under way stops as unavailable');
  await t.rejects(queued, { code: 'unavailable', message: 'store closed' }, 'the queued one too');
  t.same(gate.runs, ['start', 'aborted'], 'the queued sweep never started');
  await t.rejects(sweeper.sweep(), { code: 'unavailable' }, 'a sweep after close is refused');
});

t.test('a background sweep reports its failure, and none once the store is closing', async (t) => {
  const errors: unknown[] = [];
  let runs = 0;
  let abortedRuns = 0;
  const sweeper = new Sweeper(async (signal) => {
    runs += 1;
    if (runs === 1) throw new Error('bucket gone');
    await new Promise<void>((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        abortedRuns += 1;
        reject(new Error('stopped by close'));
      });
    });
  }, 'store closed');
  sweeper.start(5, (err) => errors.push(err));
  // The second sweep waits for close; the timer's later calls queue behind it.
  for (const deadline = Date.now() + 10_000; runs < 2 && Date.now() < deadline; ) await sleep(5);
  await sleep(30);
  t.match(errors, [{ message: 'bucket gone' }], 'the periodic sweep reported its failure');
  await sweeper.close();
  t.equal(abortedRuns, 1, 'the sweep under way at close was stopped');
  t.equal(runs, 2, 'the queued one never ran');
  await sleep(30);
  t.equal(errors.length, 1, 'neither was reported as a failure, nor did the timer run on');
});

t.test('start runs the given first part in the background, and nothing periodic when the interval is 0', async (t) => {
  const gate = gatedSweep();
  const sweeper = new Sweeper(gate.once, 'store closed');
  t.teardown(() => sweeper.close());
  let firstRan = false;
  sweeper.start(0, undefined, async () => {
    firstRan = true;
  });
  t.ok(firstRan, 'the first part started at once');
  await sleep(30);
  t.same(gate.runs, [], 'no whole sweep ran');
  const afterFirst = sweeper.sweep();
  await sleep(5);
  gate.release();
  await afterFirst;
  t.same(gate.runs, ['start', 'end'], 'a sweep asked for afterwards is a whole one');
});
