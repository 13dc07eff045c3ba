/**
 * Running the `bindle` CLI in this process (runCli with captured streams), for tests of the
 * command line itself: parsing, help and error text. The environment is isolated as in
 * cli-runner.ts (HOME and XDG_* under `home`, no BINDLE_* from the parent).
 */
import { mkdirSync } from 'node:fs';
import type { CliIo, CliStream } from '../../client/cli/cli-io.js';
import { runCli } from '../../client/cli/run-cli.js';
import { isolatedEnv, type CliResult } from './cli-runner.js';

/** A stream that keeps what is written; `isTTY`/`columns` as given. */
export class CapturedStream implements CliStream {
  text = '';
  readonly isTTY: boolean;
  readonly columns: number | undefined;
  constructor(isTTY = false, columns?: number) {
    this.isTTY = isTTY;
    this.columns = columns;
  }
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/** Options of one in-process run. */
export interface InProcessOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Make stdout a terminal of this many columns. */
  ttyColumns?: number;
}

/** A runner bound to one isolated home directory. */
export function inProcessCli(home: string): (args: string[], opts?: InProcessOptions) => Promise<CliResult> {
  mkdirSync(home, { recursive: true });
  return async (args, opts = {}) => {
    const stdout = new CapturedStream(opts.ttyColumns !== undefined, opts.ttyColumns);
    const stderr = new CapturedStream();
    const io: CliIo = { env: isolatedEnv(home, opts.env), cwd: opts.cwd ?? home, stdout, stderr };
    const code = await runCli(args, io);
    return { code, stdout: stdout.text, stderr: stderr.text };
  };
}

/** What the CLI writes to (re)draw its live progress line: carriage return, erase the line. */
export const LIVE_LINE = '\r\x1b[2K';

/** Every live line drawn in `text` (what follows each LIVE_LINE up to a newline or the next redraw). */
export function liveLines(text: string): string[] {
  return text.split(LIVE_LINE).slice(1).map((s) => s.split('\n')[0] ?? '').filter((s) => s !== '');
}

/** What a terminal shows at the end of `text`: each line as last drawn, cleared live lines gone. */
export function terminalScreen(text: string): string {
  return text.split('\n').map((line) => line.split(LIVE_LINE).at(-1) ?? '').join('\n');
}

/** True when `text` holds a control character other than a newline. */
export function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x0a && (code < 0x20 || code === 0x7f)) return true;
  }
  return false;
}
