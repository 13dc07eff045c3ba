/**
 * PlainCounter and PlainHistogram: series by label values (created once, found again by them),
 * bucket arithmetic (cumulative `le` counts, +Inf, sum, count), label escaping, and text that a
 * real Prometheus parser reads back with the same values.
 */
import t from 'tap';
import { PlainCounter, PlainHistogram } from '../../server/metrics/plain-metrics.js';
import { parseScrape } from '../helpers/prometheus.js';

t.test('a counter: one series per label values, rendered and parsed back', async (t) => {
  const counter = new PlainCounter('x_total', 'Things, by kind', ['kind', 'route']);
  const a = counter.series('a', '/v1/_i/*');
  t.equal(counter.series('a', '/v1/_i/*'), a, 'the same label values give the same series');
  a.value += 3;
  counter.series('b', 'say "hi"\\ \nthere').value++;
  const text = counter.render();
  t.match(text, /^# HELP x_total Things, by kind\n# TYPE x_total counter\n/);
  t.match(text, 'route="say \\"hi\\"\\\\ \\nthere"', 'quotes, backslashes and newlines are escaped');
  const scrape = parseScrape(text);
  t.equal(scrape.types.get('x_total'), 'COUNTER');
  t.equal(scrape.value('x_total', { kind: 'a', route: '/v1/_i/*' }), 3);
  t.equal(scrape.value('x_total', { kind: 'b' }), 1);
  t.throws(() => counter.series('a'), /takes 2 label values/, 'the wrong number of label values is a programming error');
});

t.test('label values are kept apart, whatever characters they hold', async (t) => {
  const counter = new PlainCounter('y_total', 'Things', ['a', 'b']);
  counter.series('p\0q', 'r').value = 1;
  counter.series('p', 'q\0r').value = 2;
  t.not(counter.series('p\0q', 'r'), counter.series('p', 'q\0r'), 'values that would join to the same key are two series');
  t.equal(counter.series('p', 'q\0r').value, 2);
  t.equal(counter.render().split('\n').filter((line) => line.startsWith('y_total{')).length, 2);
});

t.test('a histogram: cumulative buckets, +Inf, sum and count per series', async (t) => {
  const histogram = new PlainHistogram('d_seconds', 'Durations', ['op'], [0.01, 0.1, 1]);
  const get = histogram.series('get');
  for (const v of [0.001, 0.01, 0.05, 0.5, 2, 30]) histogram.observe(get, v);
  histogram.observe(histogram.series('put'), 0.2);
  const text = histogram.render();
  t.match(text, /# TYPE d_seconds histogram\n/);
  t.match(text, 'd_seconds_bucket{le="0.01",op="get"} 2\n', 'a value equal to a bound counts in that bucket');
  t.match(text, 'd_seconds_bucket{le="0.1",op="get"} 3\n');
  t.match(text, 'd_seconds_bucket{le="1",op="get"} 4\n');
  t.match(text, 'd_seconds_bucket{le="+Inf",op="get"} 6\n', 'values over every bound only in +Inf');
  const scrape = parseScrape(text);
  t.equal(scrape.types.get('d_seconds'), 'HISTOGRAM', 'a real parser reads it as a histogram');
  t.equal(scrape.count('d_seconds', { op: 'get' }), 6);
  t.equal(scrape.count('d_seconds', { op: 'put' }), 1);
  t.equal(scrape.value('d_seconds_sum', { op: 'get' }), 0.001 + 0.01 + 0.05 + 0.5 + 2 + 30);
  t.equal(scrape.value('d_seconds_bucket', { op: 'put', le: '0.1' }), 0);
  t.equal(scrape.value('d_seconds_bucket', { op: 'put', le: '1' }), 1);
});

t.test('a family with no series renders its HELP and TYPE only', async (t) => {
  t.equal(new PlainCounter('none_total', 'Nothing yet', []).render(), '# HELP none_total Nothing yet\n# TYPE none_total counter\n');
  const unlabelled = new PlainCounter('one_total', 'One', []);
  unlabelled.series().value = 1;
  t.match(unlabelled.render(), /\none_total 1\n$/, 'a series without labels has no braces');
});
