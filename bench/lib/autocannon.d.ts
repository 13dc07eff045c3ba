/**
 * The part of autocannon's API (v8, untyped CommonJS) the benchmarks use: run a load test and
 * read its aggregated result.
 */
declare module 'autocannon' {
  interface AutocannonOptions {
    url: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    pipelining?: number;
    method?: string;
    headers?: Record<string, string>;
    /** Every reply's body must equal this; others count as `mismatches`. */
    expectBody?: string;
  }

  interface AutocannonHistogram {
    average: number;
    mean: number;
    min: number;
    max: number;
    /** Total count (requests) or total bytes (throughput). */
    total: number;
    p50: number;
    p99: number;
  }

  interface AutocannonResult {
    /** Seconds actually elapsed. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    /** Replies whose body differed from `expectBody`. */
    mismatches: number;
    '2xx': number;
    requests: AutocannonHistogram & { sent: number };
    latency: AutocannonHistogram;
    throughput: AutocannonHistogram;
  }

  /** Runs the load test; the returned object is an EventEmitter that is also thenable. */
  function autocannon(options: AutocannonOptions): PromiseLike<AutocannonResult>;
  export default autocannon;
}
