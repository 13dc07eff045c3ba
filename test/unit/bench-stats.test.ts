/**
 * The benchmark's arithmetic (bench/lib/stats.ts, bench/lib/results.ts): medians, nearest-rank
 * percentiles, run summaries, rates, and how a figure's ratio and target verdict are derived.
 * The time limit of each case. No benchmark runs here.
 */
import t from 'tap';
import { mbPerSecond, mbPerSecondOver, median, percentile, summarize } from '../../bench/lib/stats.js';
import { formatNumber, makeFigure, renderMarkdown, type BenchReport } from '../../bench/lib/results.js';

t.test('median', async (t) => {
  t.equal(median([5]), 5);
  t.equal(median([3, 1, 2]), 2, 'odd count: the middle value, whatever the input order');
  t.equal(median([4, 1, 3, 2]), 2.5, 'even count: mean of the two middle values');
  t.equal(median([10, 10, 1, 1000]), 10);
  t.equal(median([-2, -1]), -1.5);
  const input = [3, 1, 2];
  median(input);
  t.same(input, [3, 1, 2], 'the input is not reordered');
  t.throws(() => median([]), RangeError);
  t.throws(() => median([1, Number.NaN]), RangeError);
});

t.test('percentile (nearest rank)', async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  t.equal(percentile(hundred, 50), 50);
  t.equal(percentile(hundred, 99), 99);
  t.equal(percentile(hundred, 100), 100);
  t.equal(percentile(hundred, 1), 1);
  t.equal(percentile(hundred, 0), 1, 'p0 is the minimum');
  t.equal(percentile(hundred, 99.5), 100, 'a fractional rank rounds up');
  const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  t.equal(percentile(ten, 50), 5);
  t.equal(percentile(ten, 99), 10, 'p99 of 10 values is the largest');
  t.equal(percentile(ten, 90), 9);
  t.equal(percentile(ten, 91), 10);
  t.equal(percentile([7], 99), 7);
  t.throws(() => percentile(ten, 101), RangeError);
  t.throws(() => percentile(ten, -1), RangeError);
  t.throws(() => percentile([], 50), RangeError);
});

t.test('summarize and rates', async (t) => {
  t.same(summarize([3, 9, 1]), { median: 3, min: 1, max: 9, runs: [3, 9, 1] }, 'runs keep their measured order');
  t.equal(mbPerSecond(100e6, 1000), 100);
  t.equal(mbPerSecond(50e6, 250), 200);
  t.throws(() => mbPerSecond(1, 0), RangeError);
  t.equal(mbPerSecondOver(100e6, [1000, 1000]), 100);
  t.equal(mbPerSecondOver(100e6, [250, 750]), 200, 'all bytes over all time, not the mean of the rates (266.7 here)');
  t.throws(() => mbPerSecondOver(1, []), RangeError);
});

t.test('makeFigure: ratio to the baseline and the target verdict', async (t) => {
  const upload = makeFigure({
    id: 'upload',
    title: 'upload',
    unit: 'MB/s',
    runs: [90, 100, 80],
    baseline: { title: 'ceiling', runs: [100, 100, 100] },
    target: { on: 'ratio', op: '>=', bound: 0.9, text: '≥ 0.9 × ceiling' },
  });
  t.equal(upload.value.median, 90);
  t.equal(upload.ratio, 0.9);
  t.equal(upload.target?.met, true, 'a ratio equal to the bound meets a ≥ target');

  const slow = makeFigure({
    id: 'cold',
    title: 'cold',
    unit: 'ms',
    runs: [30, 31, 29],
    baseline: { title: 'plain', runs: [20] },
    target: { on: 'ratio', op: '<=', bound: 1.2, text: '≤ 1.2 × plain' },
  });
  t.equal(slow.ratio, 1.5);
  t.equal(slow.target?.met, false, 'ratio 1.5 misses ≤ 1.2');

  const latency = makeFigure({ id: 'p99', title: 'p99', unit: 'ms', runs: [9, 12, 11], target: { on: 'value', op: '<=', bound: 10, text: '≤ 10 ms' } });
  t.equal(latency.target?.met, false, 'the median (11), not the best run, is judged');
  t.equal(latency.ratio, undefined);

  t.throws(
    () => makeFigure({ id: 'x', title: 'x', unit: '', runs: [1], target: { on: 'ratio', op: '>=', bound: 1, text: '' } }),
    /needs a baseline/,
  );
});

t.test('makeFigure: interleaved rounds give the median of the per-round ratios; peers get theirs', async (t) => {
  const figure = makeFigure({
    id: 'get',
    title: 'get',
    unit: 'req/s',
    runs: [10, 40, 30],
    baseline: { title: 'bare', runs: [20, 40, 100] },
    peers: [{ title: 'nginx', runs: [100, 100, 100] }],
    target: { on: 'ratio', op: '>=', bound: 0.5, text: '≥ 0.5 × bare' },
  });
  t.equal(figure.ratio, 0.5, 'per-round ratios 0.5, 1, 0.3: median 0.5 (the ratio of medians would be 0.75)');
  t.equal(figure.target?.met, true);
  t.equal(figure.peers?.length, 1);
  t.equal(figure.peers?.[0]?.ratio, 0.3);
  t.equal(figure.peers?.[0]?.value.median, 100);
  const report: BenchReport = {
    generatedAt: '2026-01-01T00:00:00.000Z',
    durationSeconds: 1,
    quick: false,
    only: null,
    machine: { cpu: 'cpu', cores: 2, memoryGiB: 4, node: 'v20', platform: 'linux-x64', loadAverage: { start: 0.1, end: 0.2 } },
    figures: [figure],
    skipped: [],
    notes: [],
  };
  t.match(renderMarkdown(report), /bare: 40\.0 req\/s; nginx: 100 req\/s \(ours 0\.30×\)/);
});

t.test('Markdown report', async (t) => {
  const report: BenchReport = {
    generatedAt: '2026-01-01T00:00:00.000Z',
    durationSeconds: 12.3,
    quick: false,
    only: null,
    machine: { cpu: 'cpu', cores: 2, memoryGiB: 4, node: 'v20', platform: 'linux-x64', loadAverage: { start: 0.1, end: 0.2 } },
    figures: [
      makeFigure({ id: 'a', title: 'A | pipe', unit: 'MB/s', runs: [1000, 1500, 1200], target: { on: 'value', op: '>=', bound: 1100, text: '≥ 1100' } }),
      makeFigure({ id: 'b', title: 'B', unit: 'ms', runs: [5], target: { on: 'value', op: '<=', bound: 4, text: '≤ 4 ms' } }),
    ],
    skipped: [{ case: 'rss', reason: 'not enough disk' }],
    notes: [],
  };
  const md = renderMarkdown(report);
  t.match(md, /\| A \\\| pipe \| 1,200 MB\/s \| 1,000 – 1,500 \| — \| — \| ≥ 1100 \| PASS \|/);
  t.match(md, /\| B \| 5\.00 ms \| .* \| \*\*MISS\*\* \|/);
  t.match(md, /- rss: not enough disk/);
  t.equal(formatNumber(0.12345), '0.123');
  t.equal(formatNumber(12.345), '12.3');
  t.equal(formatNumber(123.45), '123');
});

t.test('each case has its own time limit per backend: 10 minutes, 30 for the full _q (it seeds 1,000,000 invoices), the soak all its phases', async (t) => {
  const { CASE_TIME_LIMIT_MS, caseTimeLimitMs } = await import('../../bench/lib/context.js');
  const { queryCase } = await import('../../bench/cases/query.js');
  const { soakCase } = await import('../../bench/cases/soak.js');
  const { uploadCase } = await import('../../bench/cases/upload.js');
  t.equal(caseTimeLimitMs(uploadCase, false, 1), CASE_TIME_LIMIT_MS);
  t.equal(caseTimeLimitMs(uploadCase, false, 2), 2 * CASE_TIME_LIMIT_MS, 'a case runs on every backend');
  t.equal(caseTimeLimitMs(queryCase, false, 1), 3 * CASE_TIME_LIMIT_MS);
  t.equal(caseTimeLimitMs(queryCase, true, 1), CASE_TIME_LIMIT_MS, 'the quick run seeds a small index');
  t.ok(caseTimeLimitMs(soakCase, false, 1) > 10 * 60 * 1000 + 30 * 1000, 'the soak: longer than its 10-minute soak and its warm-up');
  t.ok(caseTimeLimitMs(soakCase, true, 1) < CASE_TIME_LIMIT_MS, 'the quick soak is short');
});
