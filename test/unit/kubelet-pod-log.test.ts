/**
 * Pod logs in the CRI format (pod-log.ts): records per line with the stream and a full/partial
 * tag, a long line split into `P` records, a last line without a newline, both streams in one
 * file, and reading them back whole or per stream.
 */
import t from 'tap';
import { open, readFile } from 'node:fs/promises';
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
