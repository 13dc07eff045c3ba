/**
 * Reading a Prometheus text exposition in tests, with a real parser (parse-prometheus-text-format):
 * a scrape's samples by metric name and labels.
 *
 * That parser (v1.1.1) merges every series of a labelled histogram into one, losing the labels
 * and the counts. So the text is parsed twice: as it is, for each family's type, and with the
 * histograms' `# TYPE … histogram` lines left out, which makes the parser read every
 * `_bucket`, `_count` and `_sum` series as a family of its own, labels intact (once per
 * label set, as prom-client writes a histogram's series label set by label set).
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

type PrometheusSample = ReturnType<typeof parsePrometheusTextFormat>[number]['metrics'][number];

/** One parsed scrape. */
export interface Scrape {
  /** The type of every metric family, by name (e.g. COUNTER, HISTOGRAM). */
  readonly types: ReadonlyMap<string, string>;
  /** The sum of the values of `name`'s samples whose labels include `labels`; 0 when none. */
  value(name: string, labels?: Readonly<Record<string, string>>): number;
  /** The sum of the observation counts (`_count`) of histogram `name`'s series whose labels include `labels`. */
  count(name: string, labels?: Readonly<Record<string, string>>): number;
  /** Every label set of `name`'s samples. */
  labelSets(name: string): Array<Record<string, string>>;
}

export function parseScrape(text: string): Scrape {
  const types = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f.type]));
  const histogramTypes = new Set([...types].filter(([, type]) => type === 'HISTOGRAM').map(([name]) => `# TYPE ${name} histogram`));
  const series = parsePrometheusTextFormat(text.split('\n').filter((line) => !histogramTypes.has(line)).join('\n'));
  const byName = new Map<string, PrometheusSample[]>();
  for (const family of series) byName.set(family.name, [...(byName.get(family.name) ?? []), ...family.metrics]);
  const matching = (name: string, labels: Readonly<Record<string, string>>) =>
    (byName.get(name) ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  const value = (name: string, labels: Readonly<Record<string, string>> = {}): number =>
    matching(name, labels).reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  return {
    types,
    value,
    count: (name, labels = {}) => value(`${name}_count`, labels),
    labelSets: (name) => (byName.get(name) ?? []).map((m) => ({ ...m.labels })),
  };
}
