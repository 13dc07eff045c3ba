/**
 * Types for on-exit-leak-free (the exit hooks pino registers its own destinations with), which
 * ships none: hooks that hold their object weakly, so that an object no longer used is collected
 * and its hook dropped, and one process listener serves them all.
 */
declare module 'on-exit-leak-free' {
  /** Calls `fn(obj, 'exit')` when the process exits, if `obj` is still alive then. */
  export function register<T extends object>(obj: T, fn: (obj: T, event: 'exit') => void): void;
  /** Removes `obj`'s hooks. */
  export function unregister(obj: object): void;
}
