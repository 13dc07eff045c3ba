/**
 * Per-request loggers built on first use, and the request ids they are bound to. Fastify gives
 * every request a child of the server's logger bound to its request id (`reqId`), and pino builds
 * a child eagerly (it serializes the bindings into a string), which costs a small GET a
 * measurable share of its CPU even when the level in force drops everything the request would
 * log (the access log lines are `info`). The child here is only built when something is logged at
 * an enabled level, or when a caller asks for its level or a child of it; what it writes is the
 * same, bindings included.
 */
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString } from 'pino';

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** A logger that can say whether a level is enabled (pino's); a Fastify logger may not. */
interface LevelAwareLogger extends FastifyBaseLogger {
  isLevelEnabled(level: LevelWithSilentOrString): boolean;
}

function isLevelAware(logger: FastifyBaseLogger): logger is LevelAwareLogger {
  return typeof (logger as Partial<LevelAwareLogger>).isLevelEnabled === 'function';
}

/** The request's logger: logs through `parent.child(bindings, options)`, built on the first enabled call. */
class LazyChildLogger implements FastifyBaseLogger {
  #child: FastifyBaseLogger | undefined;
  readonly #parent: LevelAwareLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;

  constructor(parent: LevelAwareLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #real(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  #log(level: LevelName, args: unknown[]): void {
    if (this.#child === undefined && !this.#parent.isLevelEnabled(level)) return;
    this.#real()[level](...(args as [unknown]));
  }

  get level(): LevelWithSilentOrString {
    return this.#child?.level ?? this.#parent.level;
  }

  set level(level: LevelWithSilentOrString) {
    this.#real().level = level;
  }

  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }

  error(...args: unknown[]): void {
    this.#log('error', args);
  }

  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }

  info(...args: unknown[]): void {
    this.#log('info', args);
  }

  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }

  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options);
  }
}

/**
 * Fastify's `childLoggerFactory`: a LazyChildLogger when the parent can tell its enabled levels
 * and the route sets no level or serializers of its own (none here does), else pino's child.
 */
export const lazyChildLoggerFactory: NonNullable<FastifyServerOptions['childLoggerFactory']> = (logger, bindings, options) => {
  const plain = options.level === undefined && options.serializers === undefined && options.redact === undefined;
  return plain && isLevelAware(logger) ? new LazyChildLogger(logger, bindings, options) : logger.child(bindings, options);
};

/** Fastify's bound on its request counter (2^31 - 1, V8's largest small integer), after which it wraps. */
const MAX_REQUEST_COUNTER = 2147483647;

/**
 * A source of request ids in the form Fastify gives by default (`req-` and a counter in base 36,
 * wrapping at 2^31 - 1). Fastify's own counter is private to it; the server passes this one as
 * Fastify's `genReqId` and the fast lane (./fast-lane.ts), which logs the requests it answers,
 * draws from it too, so that the ids in a server's log stay unique and in order.
 */
export function requestIdSource(): () => string {
  let counter = 0;
  return () => {
    counter = (counter + 1) & MAX_REQUEST_COUNTER;
    return `req-${counter.toString(36)}`;
  };
}
