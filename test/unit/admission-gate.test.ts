/**
 * server/http/admission-gate: at most `limit` jobs run at a time, at most one started per turn of
 * the event loop (other callbacks run in between); each client's jobs start in FIFO order and
 * clients take turns (jobs queued without a client are one client's: FIFO); a failed job (rejected
 * or thrown) passes its error on and frees its slot; a job no longer wanted when its turn comes
 * is dropped unrun.
 */
import t from 'tap';
import { AdmissionGate, AdmissionSkipped } from '../../server/http/admission-gate.js';

/** A job that records its start and end and finishes when `finish()` is called. */
function controlled(log: string[], name: string): { job: () => Promise<string>; finish: () => void } {
  let finish = (): void => undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  return {
    job: async () => {
      log.push(`start ${name}`);
      await done;
      log.push(`end ${name}`);
      return name;
    },
    finish: () => finish(),
  };
}

/** Jobs that record their start and finish at once. */
function recorder(log: string[]): (name: string) => () => Promise<string> {
  return (name) => async () => {
    log.push(`start ${name}`);
    return name;
  };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('at most `limit` jobs run at once, admitted in FIFO order', async (t) => {
  const gate = new AdmissionGate(2);
  const log: string[] = [];
  const jobs = ['a', 'b', 'c', 'd'].map((name) => controlled(log, name));
  const results = jobs.map(({ job }) => gate.run(job));
  for (let i = 0; i < 5; i++) await turn();
  t.same(log, ['start a', 'start b'], 'two run, two wait');
  t.equal(gate.running, 2);
  t.equal(gate.waiting, 2);
  jobs[1]?.finish();
  for (let i = 0; i < 5; i++) await turn();
  t.same(log, ['start a', 'start b', 'end b', 'start c'], 'a freed slot goes to the first waiter');
  jobs[0]?.finish();
  jobs[2]?.finish();
  jobs[3]?.finish();
  t.same(await Promise.all(results), ['a', 'b', 'c', 'd'], 'each caller gets its own job\'s result');
  t.equal(gate.running, 0);
  t.equal(gate.waiting, 0);
});

t.test('one job is started per turn of the event loop, other callbacks run in between', async (t) => {
  const gate = new AdmissionGate(100);
  const order: string[] = [];
  const runs = Array.from({ length: 5 }, (_, i) =>
    gate.run(async () => {
      order.push(`job${i}`);
      return i;
    }),
  );
  let turns = 0;
  const tick = (): void => {
    order.push(`turn${turns}`);
    turns += 1;
    if (turns < 10) setImmediate(tick);
  };
  setImmediate(tick);
  t.same(await Promise.all(runs), [0, 1, 2, 3, 4]);
  const jobs = order.filter((o) => o.startsWith('job'));
  t.same(jobs, ['job0', 'job1', 'job2', 'job3', 'job4'], 'in the order queued');
  for (let i = 1; i < jobs.length; i++) {
    const between = order.slice(order.indexOf(`job${i - 1}`), order.indexOf(`job${i}`));
    t.ok(between.some((o) => o.startsWith('turn')), `another callback ran between job${i - 1} and job${i} (${order.join(', ')})`);
  }
});

t.test('clients take turns: one client\'s backlog does not hold another\'s jobs', async (t) => {
  const gate = new AdmissionGate(1);
  const log: string[] = [];
  const first = controlled(log, 'a0');
  const results = [gate.run(first.job, undefined, 'A')];
  const record = recorder(log);
  for (let i = 1; i <= 4; i++) results.push(gate.run(record(`a${i}`), undefined, 'A'));
  results.push(gate.run(record('b0'), undefined, 'B'));
  results.push(gate.run(record('b1'), undefined, 'B'));
  results.push(gate.run(record('c0'), undefined, 'C'));
  results.push(gate.run(record('a5'), undefined, 'A'));
  for (let i = 0; i < 5; i++) await turn();
  t.same(log, ['start a0'], 'one runs');
  t.equal(gate.waiting, 8);
  first.finish();
  await Promise.all(results);
  t.same(
    log.filter((l) => l.startsWith('start')),
    ['start a0', 'start b0', 'start c0', 'start a1', 'start b1', 'start a2', 'start a3', 'start a4', 'start a5'],
    'round robin over A, B, C in the order each came to wait; each client\'s own jobs in order',
  );
  t.equal(gate.waiting, 0);
});

t.test('a client whose queue ran empty goes to the back of the turns when it queues again', async (t) => {
  const gate = new AdmissionGate(1);
  const log: string[] = [];
  const first = controlled(log, 'x');
  const running = gate.run(first.job, undefined, 'X');
  const record = recorder(log);
  const queued = [gate.run(record('a0'), undefined, 'A'), gate.run(record('b0'), undefined, 'B'), gate.run(record('b1'), undefined, 'B')];
  for (let i = 0; i < 3; i++) await turn();
  first.finish();
  await running;
  await queued[0];
  queued.push(gate.run(record('a1'), undefined, 'A'));
  await Promise.all(queued);
  t.same(
    log.filter((l) => l.startsWith('start')),
    ['start x', 'start a0', 'start b0', 'start a1', 'start b1'],
    'A queued a1 after B had come to wait, so B\'s first job goes before it and its second after',
  );
});

t.test('a failing job passes its error on and frees its slot', async (t) => {
  const gate = new AdmissionGate(1);
  const rejected = gate.run(async () => {
    throw new Error('index failed');
  });
  const thrown = gate.run((): Promise<never> => {
    throw new Error('thrown before any await');
  });
  const next = gate.run(async () => 'still admitted');
  await t.rejects(rejected, { message: 'index failed' });
  await t.rejects(thrown, { message: 'thrown before any await' });
  t.equal(await next, 'still admitted');
  t.equal(gate.running, 0);
});

t.test('a job no longer wanted when its turn comes is dropped unrun, taking neither a slot nor the turn', async (t) => {
  const gate = new AdmissionGate(1);
  const log: string[] = [];
  const first = controlled(log, 'first');
  const running = gate.run(first.job);
  let wanted = true;
  const dropped = gate.run(async () => {
    log.push('start dropped');
    return 'dropped';
  }, () => wanted);
  const next = gate.run(async () => {
    log.push('start next');
    return 'next';
  });
  for (let i = 0; i < 5; i++) await turn();
  t.equal(gate.waiting, 2);
  wanted = false;
  first.finish();
  await t.rejects(dropped, AdmissionSkipped);
  t.equal(await running, 'first');
  t.equal(await next, 'next');
  t.same(log, ['start first', 'end first', 'start next'], 'the dropped job never ran');
  t.equal(gate.running, 0);
  t.equal(gate.waiting, 0);
});

t.test('the limit is a positive integer', async (t) => {
  t.throws(() => new AdmissionGate(0), RangeError);
  t.throws(() => new AdmissionGate(1.5), RangeError);
});
