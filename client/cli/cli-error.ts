/**
 * How the CLI fails: every failure is one line on stderr, `bindle: <what failed>: <why>`,
 * optionally followed on the same line by a hint, and a non-zero exit code (1 when an
 * operation failed, 2 when the command line itself is wrong).
 */
import { isBindleError } from '../../core/errors/bindle-error.js';

/** Exit code of a failed operation (server error, bad file, failed verification, ...). */
export const EXIT_FAILURE = 1;
/** Exit code of a command line that cannot be run (unknown flag, bad value, missing argument). */
export const EXIT_USAGE = 2;

/**
 * A failure ready to be shown: `what` names the operation that failed ("could not push
 * example.com/app/1.0.0 to http://…"), `cause` is why, `hint` (optional) says what to try.
 */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  readonly what: string;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(what: string, cause: unknown, opts: { hint?: string; exitCode?: number } = {}) {
    super(`${what}: ${describeError(cause)}`, { cause });
    this.what = what;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? EXIT_FAILURE;
  }
}

/** A command line that cannot be run; exits with EXIT_USAGE. */
export function usageFailure(what: string, why: string): CliFailure {
  return new CliFailure(what, new Error(why), { exitCode: EXIT_USAGE });
}

function errnoCode(err: Error): string | undefined {
  return 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ENOSPC: 'no space left on device',
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
};

/**
 * A one-line, human description of any error: a BindleError's message, a file-system error
 * as "<reason>: <path>", otherwise the message (following `cause` for opaque wrappers such as
 * fetch's "fetch failed").
 */
export function describeError(err: unknown): string {
  if (isBindleError(err)) return oneLine(err.message);
  if (err instanceof CliFailure) return oneLine(err.message);
  if (err instanceof Error) {
    const code = errnoCode(err);
    const path = 'path' in err && typeof err.path === 'string' ? err.path : undefined;
    if (code !== undefined && ERRNO_TEXT[code] !== undefined) {
      return path !== undefined ? `${ERRNO_TEXT[code]}: ${path}` : oneLine(err.message);
    }
    if (err.message === 'fetch failed' && err.cause !== undefined) return describeError(err.cause);
    return oneLine(err.message);
  }
  return oneLine(String(err));
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The line printed for a failure (without the trailing newline). */
export function formatFailure(err: unknown): string {
  if (err instanceof CliFailure) {
    const why = describeError(err.cause);
    return `bindle: ${err.what}: ${why}${err.hint !== undefined ? ` (${err.hint})` : ''}`;
  }
  return `bindle: ${describeError(err)}`;
}

/**
 * Runs `fn` (synchronous or not); any error it throws becomes a CliFailure naming `what` (a CliFailure from a
 * nested step is passed through unchanged, so the innermost description wins). `hint`
 * computes an optional hint from the error.
 */
export async function attempt<T>(what: string, fn: () => T | Promise<T>, hint?: (err: unknown) => string | undefined): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CliFailure) throw err;
    const h = hint?.(err);
    throw new CliFailure(what, err, h === undefined ? {} : { hint: h });
  }
}
