/**
 * A pino logger whose lines are kept as parsed records, for tests of what the server logs and at
 * which level.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';

/** A log line: its level, message and, for a failed request, its error code (other fields too). */
export type LogRecord = { level: number; msg?: string; code?: string } & Record<string, unknown>;

/** A pino logger at `level` whose records land in `records`, in order. */
export function recordingLogger(level = 'info'): { logger: pino.Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') records.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { logger: pino({ level }, sink), records };
}
