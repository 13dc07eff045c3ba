/**
 * The figures a benchmark run produces, their targets, and the two result files:
 * `bench/results/latest.json` (everything, runs included) and `bench/results/latest.md` (a table),
 * or another pair of files named by the run's `--out`.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { median, summarize, type Summary } from './stats.js';

/**
 * A target for one figure: its median (`on: 'value'`) or its ratio to the baseline's median
 * (`on: 'ratio'`) must be `op` `bound`.
 */
export interface Target {
  on: 'value' | 'ratio';
  op: '>=' | '<=';
  bound: number;
  /** How the issue states it, e.g. "≥ 0.9 × min(sha256, fsync write)". */
  text: string;
}

/** One measured figure: the median/min/max of its runs, beside its ceiling or baseline. */
export interface Figure {
  /** Stable key, e.g. "upload". */
  id: string;
  title: string;
  unit: string;
  value: Summary;
  /** What the figure is compared with (the physical ceiling, or a bare Node server). */
  baseline?: { title: string; value: Summary };
  /**
   * Ratio to the baseline: the median of the per-round ratios when both have one run per round
   * (measured interleaved), else value.median / baseline.median.
   */
  ratio?: number;
  /** Further servers measured in the same rounds (nginx, the registry), with their ratios. */
  peers?: { title: string; value: Summary; ratio: number }[];
  target?: Target & { met: boolean };
  notes?: string[];
}

/** A benchmark that did not run, and why. */
export interface Skipped {
  case: string;
  reason: string;
}

export interface BenchReport {
  generatedAt: string;
  durationSeconds: number;
  quick: boolean;
  only: string[] | null;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    node: string;
    platform: string;
    /** 1-minute load average when the run started and when it ended (other work skews the figures). */
    loadAverage: { start: number; end: number };
  };
  figures: Figure[];
  skipped: Skipped[];
  notes: string[];
}

export interface FigureInput {
  id: string;
  title: string;
  unit: string;
  runs: readonly number[];
  baseline?: { title: string; runs: readonly number[] };
  peers?: readonly { title: string; runs: readonly number[] }[];
  target?: Target;
  notes?: string[];
}

/** The median of the per-round ratios when the runs pair up, else the ratio of the medians. */
export function ratioOf(runs: readonly number[], baseline: readonly number[]): number {
  if (runs.length === baseline.length && baseline.every((b) => b > 0)) return median(runs.map((v, i) => v / (baseline[i] ?? Number.NaN)));
  return median(runs) / median(baseline);
}

/** Builds a figure from raw runs: summaries, ratio to the baseline, and whether the target is met. */
export function makeFigure(input: FigureInput): Figure {
  const value = summarize(input.runs);
  const figure: Figure = { id: input.id, title: input.title, unit: input.unit, value };
  if (input.baseline !== undefined) {
    const baseline = summarize(input.baseline.runs);
    figure.baseline = { title: input.baseline.title, value: baseline };
    figure.ratio = ratioOf(input.runs, input.baseline.runs);
  }
  if (input.peers !== undefined && input.peers.length > 0) {
    figure.peers = input.peers.map((p) => ({ title: p.title, value: summarize(p.runs), ratio: ratioOf(input.runs, p.runs) }));
  }
  if (input.target !== undefined) {
    const t = input.target;
    const measured = t.on === 'ratio' ? figure.ratio : value.median;
    if (measured === undefined) throw new Error(`figure ${input.id}: a ratio target needs a baseline`);
    figure.target = { ...t, met: t.op === '>=' ? measured >= t.bound : measured <= t.bound };
  }
  if (input.notes !== undefined && input.notes.length > 0) figure.notes = [...input.notes];
  return figure;
}

/** The 1-minute load average now. */
export function loadNow(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

export function machineInfo(loadAtStart: number): BenchReport['machine'] {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: { start: loadAtStart, end: loadNow() },
  };
}

/** A number with 3 significant digits (at least), no exponent. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 1000) return Math.round(n).toLocaleString('en-US');
  if (abs >= 100) return n.toFixed(0);
  if (abs >= 10) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The Markdown report: a table of every figure, then skipped benchmarks and notes. */
export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const runs = new Set(report.figures.map((f) => f.value.runs.length));
  const lines = [
    '# Benchmark results',
    '',
    `Measured ${report.generatedAt} on ${m.cpu} (${m.cores} cores, ${m.memoryGiB} GiB), Node ${m.node}, ${m.platform}` +
      (report.quick ? ', **quick mode (small sizes: not comparable with the targets)**' : '') +
      (report.only !== null ? `, only: ${report.only.join(', ')}` : '') +
      `; the run took ${Math.round(report.durationSeconds)} s; 1-minute load average ${m.loadAverage.start} at the start, ${m.loadAverage.end} at the end.`,
    `Each figure is the median of ${[...runs].sort().join('/')} runs, with the minimum and maximum; MB = 10^6 bytes. ` +
      'Ratio = median of the per-round ratios to the baseline (rounds interleaved), or median / baseline median. Regenerate with `npm run build && npm run bench`.',
    '',
    '| Figure | Median | Min – Max | Baseline / ceiling (median) | Ratio | Target | Result |',
    '| --- | ---: | ---: | --- | ---: | --- | --- |',
  ];
  for (const f of report.figures) {
    const unit = f.unit === '' ? '' : ` ${f.unit}`;
    const peers = (f.peers ?? []).map((p) => `; ${p.title}: ${formatNumber(p.value.median)}${unit} (ours ${p.ratio.toFixed(2)}×)`).join('');
    const baseline = f.baseline === undefined ? '—' : `${f.baseline.title}: ${formatNumber(f.baseline.value.median)}${unit}${peers}`;
    const ratio = f.ratio === undefined ? '—' : `${f.ratio.toFixed(2)}×`;
    const target = f.target === undefined ? '—' : f.target.text;
    const result = f.target === undefined ? '—' : f.target.met ? 'PASS' : '**MISS**';
    lines.push(
      `| ${cell(f.title)} | ${formatNumber(f.value.median)}${unit} | ${formatNumber(f.value.min)} – ${formatNumber(f.value.max)} | ${cell(baseline)} | ${ratio} | ${cell(target)} | ${result} |`,
    );
  }
  const withNotes = report.figures.filter((f) => f.notes !== undefined);
  if (withNotes.length > 0 || report.notes.length > 0) {
    lines.push('', '## Notes', '');
    for (const note of report.notes) lines.push(`- ${note}`);
    for (const f of withNotes) for (const note of f.notes ?? []) lines.push(`- ${f.title}: ${note}`);
  }
  if (report.skipped.length > 0) {
    lines.push('', '## Skipped', '');
    for (const s of report.skipped) lines.push(`- ${s.case}: ${s.reason}`);
  }
  return `${lines.join('\n')}\n`;
}

function writeAtomically(path: string, text: string): void {
  const temp = `${path}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/** Writes `<prefix>.json` and `<prefix>.md` (e.g. bench/results/latest.json and .md), making the directory; returns their paths. */
export function writeReport(prefix: string, report: BenchReport): { json: string; markdown: string } {
  mkdirSync(dirname(prefix), { recursive: true });
  const json = `${prefix}.json`;
  const markdown = `${prefix}.md`;
  writeAtomically(json, `${JSON.stringify(report, null, 2)}\n`);
  writeAtomically(markdown, renderMarkdown(report));
  return { json, markdown };
}
