/**
 * The CLI's transfer reporter, on an in-memory stream standing in for a terminal of a fixed
 * width, with a controlled clock: one overall bar across every parcel of a push or get (small
 * parcels too) with bytes, parcels, rate and ETA; bars for long local steps; lines cut to the
 * terminal width; nothing but the done lines when the stream is not live, gathered into few
 * writes but all written by `finish` (or soon after without it); and an event it does not know
 * is an error, never taken for "done".
 */
import t from 'tap';
import type { Label } from '../../schema/index.js';
import type { CliStream } from '../../client/cli/cli-io.js';
import { createTransferReporter, formatDuration, type TransferReporter } from '../../client/cli/transfer-progress.js';
import type { TransferEvent } from '../../client/lib/workflows.js';
import { liveLines, terminalScreen } from '../helpers/cli-in-process.js';

const MiB = 1024 * 1024;

class Terminal implements CliStream {
  text = '';
  readonly isTTY: boolean;
  readonly columns: number;
  constructor(isTTY: boolean, columns = 100) {
    this.isTTY = isTTY;
    this.columns = columns;
  }
  writes = 0;
  write(chunk: string): boolean {
    this.text += chunk;
    this.writes += 1;
    return true;
  }
  get drawn(): string[] {
    return liveLines(this.text);
  }
  get screen(): string {
    return terminalScreen(this.text);
  }
}

const label = (name: string, size: number): Label => ({ sha256: name.charCodeAt(0).toString(16).padStart(2, '0').repeat(32), mediaType: 'application/octet-stream', name, size });
const big = label('big.bin', 3 * MiB);
const small = label('small.txt', 10);
const other = label('other.bin', MiB - 10);

/** Plays a get of three parcels (4 MiB), the clock moving 500 ms per event; returns the stream. */
function play(stream: Terminal, live: boolean): { stream: Terminal; reporter: TransferReporter } {
  let now = 0;
  const reporter = createTransferReporter(stream, { live, doneLine: (l) => `Fetched ${l.name}`, now: () => (now += 500) });
  const events: TransferEvent[] = [
    { kind: 'plan', parcels: 3, bytes: 4 * MiB },
    { kind: 'start', label: small },
    { kind: 'start', label: big },
    { kind: 'progress', label: small, bytes: 10 },
    { kind: 'done', label: small },
    { kind: 'progress', label: big, bytes: MiB },
    { kind: 'progress', label: big, bytes: 3 * MiB },
    { kind: 'done', label: big },
    { kind: 'start', label: other },
    { kind: 'progress', label: other, bytes: MiB - 10 },
    { kind: 'done', label: other },
  ];
  for (const event of events) reporter.onEvent(event);
  reporter.finish();
  return { stream, reporter };
}

t.test('not live: only one line per parcel, no control characters', async (t) => {
  const { stream, reporter } = play(new Terminal(false), false);
  reporter.step('Hashing parcels', MiB, 4 * MiB);
  t.equal(stream.text, 'Fetched small.txt\nFetched big.bin\nFetched other.bin\n');
});

t.test('not live: the lines of many parcels go out in few writes, in order, all by finish', async (t) => {
  const stream = new Terminal(false);
  const reporter = createTransferReporter(stream, { live: false, doneLine: (l) => `Fetched ${l.name}` });
  const names = Array.from({ length: 1000 }, (_, i) => `parcel-${i}.bin`);
  for (const name of names) reporter.onEvent({ kind: 'done', label: label(name, 10) });
  t.ok(stream.writes < 100, `${stream.writes} writes for 1000 lines`);
  reporter.finish();
  t.equal(stream.text, names.map((n) => `Fetched ${n}\n`).join(''), 'every line, in order, once finished');
});

t.test('not live: gathered lines are written soon without finish', async (t) => {
  const stream = new Terminal(false);
  const reporter = createTransferReporter(stream, { live: false, doneLine: (l) => `Fetched ${l.name}` });
  reporter.onEvent({ kind: 'done', label: small });
  reporter.line('a message');
  for (let i = 0; i < 100 && stream.text === ''; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(stream.text, 'Fetched small.txt\na message\n');
  reporter.finish();
  t.equal(stream.text, 'Fetched small.txt\na message\n', 'nothing twice');
});

t.test('on a terminal: one overall bar across all parcels, with rate, ETA and parcel count', async (t) => {
  const { stream } = play(new Terminal(true), true);
  const drawn = stream.drawn;
  t.equal(drawn[0], '[------------------------] 0 B / 4.0 MiB  0/3 parcels', 'the plan draws an empty bar at once');
  t.ok(drawn.some((l) => / 10 B \/ 4\.0 MiB .* 1\/3 parcels$/.test(l)), 'a small parcel moves the overall bar too');
  t.ok(drawn.includes('[######------------------] 1.0 MiB / 4.0 MiB  341 KiB/s  ETA 0:09  1/3 parcels'), `bytes, rate and ETA: ${drawn.join(' | ')}`);
  t.ok(drawn.some((l) => l.startsWith('[##################------] 3.0 MiB / 4.0 MiB') && l.endsWith('2/3 parcels')));
  t.equal(stream.screen, 'Fetched small.txt\nFetched big.bin\nFetched other.bin\n', 'done lines stay, the bar is cleared at the end');
});

t.test('lines are cut to the terminal width', async (t) => {
  const { stream } = play(new Terminal(true, 40), true);
  t.ok(stream.drawn.length > 3);
  for (const line of stream.drawn) t.ok(line.length <= 39, `${JSON.stringify(line)} fits in 40 columns`);
});

t.test('a long local step shows its own bar until it is done', async (t) => {
  const stream = new Terminal(true);
  let now = 0;
  const reporter = createTransferReporter(stream, { live: true, doneLine: (l) => l.name, now: () => (now += 500) });
  reporter.step('Hashing parcels', 0, 4 * MiB);
  reporter.step('Hashing parcels', 2 * MiB, 4 * MiB);
  t.same(stream.drawn, ['Hashing parcels [------------------------] 0 B / 4.0 MiB', 'Hashing parcels [############------------] 2.0 MiB / 4.0 MiB']);
  reporter.step('Hashing parcels', 4 * MiB, 4 * MiB);
  t.equal(stream.screen, '', 'a finished step leaves nothing behind');
  reporter.step('Compressing', MiB, 2 * MiB);
  reporter.line('a message');
  t.match(stream.screen, /^a message\nCompressing \[#{12}-{12}\] 1\.0 MiB \/ 2\.0 MiB$/, 'a line keeps the live line below it');
  reporter.finish();
  t.equal(stream.screen, 'a message\n');
});

t.test('an unknown event is an error, not a finished parcel', async (t) => {
  const stream = new Terminal(false);
  const reporter = createTransferReporter(stream, { live: false, doneLine: (l) => `Fetched ${l.name}` });
  t.throws(() => reporter.onEvent({ kind: 'paused', label: small } as unknown as TransferEvent), /unknown transfer event/);
  t.equal(stream.text, '', 'nothing was reported as done');
});

t.test('durations', async (t) => {
  t.equal(formatDuration(0), '0:00');
  t.equal(formatDuration(6.2), '0:07');
  t.equal(formatDuration(75), '1:15');
  t.equal(formatDuration(3725), '1:02:05');
});
