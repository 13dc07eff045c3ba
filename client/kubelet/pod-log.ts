/**
 * Pod logs in the Kubernetes CRI logging format (what the kubelet writes under /var/log/pods
 * and `kubectl logs` reads): one record per line, `<RFC 3339 time> <stream> <tag> <text>`,
 * where stream is `stdout` or `stderr` and tag is `F` for a full line or `P` for a part of a
 * line longer than `MAX_RECORD_BYTES` (the rest follows in the next records). Both streams go
 * to one file in the order the kubelet read them, so the file reads like the terminal would
 * and each line still says where it came from. A last line without a newline is written as a
 * full line when its stream ends. A stream is read no faster than its records are written: a
 * module that prints without end waits on its pipe, it does not fill the kubelet's memory. Given
 * `maxBytes` and `rotate`, a log file that a record would take past `maxBytes` is handed to
 * `rotate`, which puts it aside and opens the next (as the kubelet's containerLogMaxSize does):
 * a module that prints without end cannot fill the disk either.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export type LogStream = 'stdout' | 'stderr';

/** Longest text in one record; longer lines are split into `P` records. */
export const MAX_RECORD_BYTES = 16 * 1024;

const NEWLINE = 0x0a;

/** One record of a pod log. */
export interface LogRecord {
  time: string;
  stream: LogStream;
  /** True for a `P` record (the line continues in the next record of the same stream). */
  partial: boolean;
  text: string;
}

/** How large a container's log file may grow before it is rotated, by default (Kubernetes' containerLogMaxSize). */
export const MAX_LOG_BYTES = 10 * 2 ** 20;

export interface PodLogOptions {
  /** The largest a log file may grow to (a record longer than this still goes whole into a file of its own). */
  readonly maxBytes?: number;
  /** Puts the full log file aside (closing it) and resolves with the next one to write to. */
  readonly rotate?: (full: FileHandle) => Promise<FileHandle>;
}

/** Writes the records of a container's streams to one log file (see the module comment). */
export class PodLogWriter {
  #file: FileHandle;
  /** Bytes in the file, once known (its size when the first record is written, then counted). */
  #size: number | undefined;
  readonly #maxBytes: number;
  readonly #rotate: PodLogOptions['rotate'];
  #writes: Promise<unknown> = Promise.resolve();

  constructor(file: FileHandle, opts: PodLogOptions = {}) {
    this.#file = file;
    this.#maxBytes = opts.maxBytes ?? MAX_LOG_BYTES;
    this.#rotate = opts.rotate;
  }

  /** Copies `stream` into the log as records of `name`; resolves when it ended and every record is written. */
  async attach(stream: Readable, name: LogStream): Promise<void> {
    let pending: Buffer = Buffer.alloc(0);
    for await (const chunk of stream) {
      pending = Buffer.concat([pending, chunk as Buffer]);
      let newline: number;
      while ((newline = pending.indexOf(NEWLINE)) >= 0) {
        this.#record(name, this.#parts(name, pending.subarray(0, newline)), false);
        pending = pending.subarray(newline + 1);
      }
      pending = this.#parts(name, pending);
      // The next chunk is read only once this one's records are written (backpressure).
      await this.#writes;
    }
    if (pending.length > 0) this.#record(name, pending, false);
    await this.#writes;
  }

  /** Writes `P` records while `text` is longer than a record may be; returns the rest. */
  #parts(stream: LogStream, text: Buffer): Buffer {
    let rest = text;
    while (rest.length > MAX_RECORD_BYTES) {
      this.#record(stream, rest.subarray(0, MAX_RECORD_BYTES), true);
      rest = rest.subarray(MAX_RECORD_BYTES);
    }
    return rest;
  }

  #record(stream: LogStream, text: Buffer, partial: boolean): void {
    const line = Buffer.concat([Buffer.from(`${new Date().toISOString()} ${stream} ${partial ? 'P' : 'F'} `), text, Buffer.from('\n')]);
    this.#writes = this.#writes.then(() => this.#write(line));
  }

  async #write(line: Buffer): Promise<void> {
    this.#size ??= (await this.#file.stat()).size;
    if (this.#rotate !== undefined && this.#size > 0 && this.#size + line.length > this.#maxBytes) {
      this.#file = await this.#rotate(this.#file);
      this.#size = 0;
    }
    await this.#file.write(line);
    this.#size += line.length;
  }
}

/** Parses a CRI log (lines that are not records are skipped). */
export function parsePodLog(text: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/su.exec(line);
    if (m === null) continue;
    records.push({ time: m[1] ?? '', stream: m[2] as LogStream, partial: m[3] === 'P', text: m[4] ?? '' });
  }
  return records;
}

/** The text a container wrote, as `kubectl logs` shows it: both streams, or one (`stream`). */
export function podLogText(text: string, stream?: LogStream): string {
  return parsePodLog(text)
    .filter((r) => stream === undefined || r.stream === stream)
    .map((r) => (r.partial ? r.text : `${r.text}\n`))
    .join('');
}
