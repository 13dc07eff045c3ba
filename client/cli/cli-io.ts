/**
 * The process surface the `bindle` CLI talks to (environment, working directory, output
 * streams), so that the whole CLI runs against any set of them, and the line-oriented writers
 * every command prints through.
 */

/** An output stream; `isTTY` and `columns` are present on terminals. */
export interface CliStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/**
 * What one CLI invocation runs against. `env` supplies the `BINDLE_*` defaults and the XDG
 * directories; relative paths given on the command line resolve against `cwd`.
 */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: CliStream;
  readonly stderr: CliStream;
}

/** The real process: its environment, working directory, stdout and stderr. */
export function processIo(): CliIo {
  return { env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr };
}

/** Writes `text` to stdout, ending it with a newline unless it already ends with one. */
export function printLine(io: CliIo, text: string): void {
  io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Writes one line to stderr. */
export function warnLine(io: CliIo, text: string): void {
  io.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}
