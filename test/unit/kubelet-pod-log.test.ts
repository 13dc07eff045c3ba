/**
 * Pod logs in the CRI format (pod-log.ts): records per line with the stream and a full/partial
 * tag, a long line split into `P` records, a last line without a newline, both streams in one
 * file, and reading them back whole or per stream.
 */
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MAX_RECORD_BYTES, parsePodLog, PodLogWriter, podLogText } from '../../client/kubelet/pod-log.js';

t.test('records, partial lines and streams', async (t) => {
  const path = join(t.testdir(), 'c.log');
  const file = await open(path, 'w');
  const long = 'x'.repeat(MAX_RECORD_BYTES + 10);
  try {
    const writer = new PodLogWriter(file);
    await writer.attach(Readable.from([Buffer.from('one\ntw'), Buffer.from('o\n'), Buffer.from(`${long}\nno newline`)]), 'stdout');
    await writer.attach(Readable.from([Buffer.from('oops\n')]), 'stderr');
  } finally {
    await file.close();
  }
  const text = await readFile(path, 'utf8');
  for (const line of text.trimEnd().split('\n')) t.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|stderr) [FP] /);
  t.same(
    parsePodLog(text).map((r) => [r.stream, r.partial, r.text.length > 20 ? `${r.text.length} bytes` : r.text]),
    [
      ['stdout', false, 'one'],
      ['stdout', false, 'two'],
      ['stdout', true, `${MAX_RECORD_BYTES} bytes`],
      ['stdout', false, 'xxxxxxxxxx'],
      ['stdout', false, 'no newline'],
      ['stderr', false, 'oops'],
    ],
  );
  t.equal(podLogText(text, 'stdout'), `one\ntwo\n${long}\nno newline\n`);
  t.equal(podLogText(text, 'stderr'), 'oops\n');
  t.equal(podLogText(text), `one\ntwo\n${long}\nno newline\noops\n`);
  t.same(parsePodLog('not a record\n'), [], 'other lines are skipped');
});

t.test('a stream is read no faster than its records are written', async (t) => {
  const path = join(t.testdir(), 'slow.log');
  const file = await open(path, 'w');
  let writesUnderWay = 0;
  let mostUnderWay = 0;
  // A file whose writes take a while, as a slow disk's do.
  const slow = new Proxy(file, {
    get(target, key, receiver) {
      if (key !== 'write') return Reflect.get(target, key, receiver) as unknown;
      return async (line: Buffer) => {
        writesUnderWay++;
        mostUnderWay = Math.max(mostUnderWay, writesUnderWay);
        await new Promise((resolve) => setTimeout(resolve, 2));
        const result = await target.write(line);
        writesUnderWay--;
        return result;
      };
    },
  });
  let chunksRead = 0;
  let readAhead = 0;
  const lines = Readable.from((function* () {
    for (let i = 0; i < 50; i++) {
      chunksRead++;
      yield Buffer.from(`line ${i}\n`);
    }
  })());
  try {
    const writer = new PodLogWriter(slow);
    const attached = writer.attach(lines, 'stdout');
    const watch = setInterval(() => {
      readAhead = Math.max(readAhead, chunksRead - parsePodLogLines(path));
    }, 1);
    await attached;
    clearInterval(watch);
  } finally {
    await file.close();
  }
  t.equal(podLogText(await readFile(path, 'utf8')).split('\n').length - 1, 50, 'every line is written');
  t.equal(mostUnderWay, 1, 'one write at a time');
  t.ok(readAhead <= 20, `the stream is not read far ahead of the file (at most ${readAhead} chunks, of 50)`);
});

/** Records in the file at `path` now (0 while it cannot be read). */
function parsePodLogLines(path: string): number {
  try {
    return parsePodLog(readFileSync(path, 'utf8')).length;
  } catch {
    return 0;
  }
}

t.test('a log file that would grow past maxBytes is rotated: at most two files of that size', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'main.log');
  const opened = [await open(path, 'a')];
  let rotations = 0;
  const writer = new PodLogWriter(opened[0] as FileHandle, {
    maxBytes: 4096,
    rotate: async (full) => {
      rotations++;
      await rename(path, `${path}.1`);
      await full.close();
      const next = await open(path, 'w');
      opened.push(next);
      return next;
    },
  });
  const lines = Array.from({ length: 500 }, (_, i) => Buffer.from(`line ${i} ${'x'.repeat(40)}\n`));
  try {
    await writer.attach(Readable.from(lines), 'stdout');
  } finally {
    await opened.at(-1)?.close();
  }
  t.ok(rotations > 5, `rotated ${rotations} times`);
  for (const file of [path, `${path}.1`]) t.ok(statSync(file).size <= 4096, `${file} stays within maxBytes (${statSync(file).size})`);
  const last = podLogText(await readFile(path, 'utf8'));
  t.match(last, /line 499 x+\n$/, 'the newest lines are in the current file');
  const before = podLogText(await readFile(`${path}.1`, 'utf8'));
  t.equal(Number(/line (\d+)/.exec(last)?.[1]), Number(/line (\d+) x+\n$/.exec(before)?.[1]) + 1, 'and the ones just before them in the rotated one');
});
