/**
 * Counting the event loop's turns while a piece of code runs: a chain of `setImmediate` callbacks,
 * each of which runs only once the loop is back in its check phase. Code that holds the main
 * thread for its whole length lets none run.
 */

/** Runs `fn` and returns its result with the number of event-loop turns taken while it was under way. */
export async function withEventLoopTurns<T>(fn: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const turn = (): void => {
    if (done) return;
    turns++;
    setImmediate(turn);
  };
  setImmediate(turn);
  try {
    return { result: await fn(), turns };
  } finally {
    done = true;
  }
}
