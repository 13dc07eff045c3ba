/**
 * Counters and histograms for the metrics recorded on every request (HTTP requests, storage
 * operations), kept as plain numbers in per-label-set series objects and rendered in the
 * Prometheus text exposition format only when scraped. prom-client's counters and histograms
 * hash their label set on every increment, even through `labels()` children: about 2 µs per
 * request for a count and a duration (measured here), a noticeable share of a small parcel GET.
 * Here a series is looked up by its label values without building a key (`series()`), and
 * recording is an addition.
 * ServerMetrics renders these after its prom-client registry.
 */

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Metric help text as the text format wants it: backslash and newline escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** One level of a family's series tree: by the next label value; a series at the last level. */
interface SeriesNode<Series> {
  readonly next: Map<string, SeriesNode<Series>>;
  series: Series | undefined;
}

/** What every family has: a name, help, label names and its series by label values. */
abstract class PlainFamily<Series> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** The series by their label values, one map level per label (no key string per look-up). */
  private readonly root: SeriesNode<Series> = { next: new Map(), series: undefined };
  /** Every series with its rendered labels, in creation order (the order rendered). */
  private readonly all: { labels: string; series: Series }[] = [];

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** The series of these label values (in labelNames order), created at zero when new. Cheap enough per request. */
  series(...values: string[]): Series {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name} takes ${this.labelNames.length} label values, not ${values.length}`);
    let node = this.root;
    for (const value of values) {
      let next = node.next.get(value);
      if (next === undefined) {
        next = { next: new Map(), series: undefined };
        node.next.set(value, next);
      }
      node = next;
    }
    if (node.series === undefined) {
      node.series = this.create();
      const labels = this.labelNames.map((name, i) => `${name}="${escapeLabel(values[i] ?? '')}"`).join(',');
      this.all.push({ labels, series: node.series });
    }
    return node.series;
  }

  /** The family in the text exposition format, every line ending with a newline. */
  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`];
    for (const { labels, series } of this.all) lines.push(this.lines(labels, series));
    return lines.join('');
  }

  protected abstract readonly type: 'counter' | 'histogram';
  protected abstract create(): Series;
  /** The sample lines of one series, whose rendered labels (`a="x",b="y"`) are `labels`. */
  protected abstract lines(labels: string, series: Series): string;
}

/** A counter's series: add to `value`. */
export interface CounterSeries {
  value: number;
}

export class PlainCounter extends PlainFamily<CounterSeries> {
  protected readonly type = 'counter';

  protected create(): CounterSeries {
    return { value: 0 };
  }

  protected lines(labels: string, series: CounterSeries): string {
    return `${this.name}${labels === '' ? '' : `{${labels}}`} ${series.value}\n`;
  }
}

/** A histogram's series: record with PlainHistogram.observe. */
export interface HistogramSeries {
  count: number;
  sum: number;
  /** Observations per bucket, not cumulative: index i counts values ≤ bounds[i] and > bounds[i-1]; the last, those over every bound. */
  readonly buckets: Float64Array;
}

export class PlainHistogram extends PlainFamily<HistogramSeries> {
  protected readonly type = 'histogram';
  /** Upper bounds of the buckets, ascending. */
  readonly bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(name, help, labelNames);
    this.bounds = bounds;
  }

  /** Records one observation of `value` in `series` (one of this histogram's). */
  observe(series: HistogramSeries, value: number): void {
    series.count++;
    series.sum += value;
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] ?? Infinity)) i++;
    series.buckets[i] = (series.buckets[i] ?? 0) + 1;
  }

  protected create(): HistogramSeries {
    return { count: 0, sum: 0, buckets: new Float64Array(this.bounds.length + 1) };
  }

  protected lines(labels: string, series: HistogramSeries): string {
    const rest = labels === '' ? '' : `,${labels}`;
    const out: string[] = [];
    let cumulative = 0;
    for (const [i, bound] of this.bounds.entries()) {
      cumulative += series.buckets[i] ?? 0;
      out.push(`${this.name}_bucket{le="${bound}"${rest}} ${cumulative}\n`);
    }
    const plain = labels === '' ? '' : `{${labels}}`;
    out.push(`${this.name}_bucket{le="+Inf"${rest}} ${series.count}\n`, `${this.name}_sum${plain} ${series.sum}\n`, `${this.name}_count${plain} ${series.count}\n`);
    return out.join('');
  }
}
