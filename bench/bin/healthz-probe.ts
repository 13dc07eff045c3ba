#!/usr/bin/env node
/**
 * The `/healthz` probe of the benchmarks, in a process of its own so that the load the
 * benchmark generates in its own event loop cannot delay the probe's requests or its clock:
 * `healthz-probe <origin> [pause-ms]` asks `<origin>/healthz` one request at a time, each on a
 * new connection (as a kubelet's probe does), pausing `pause-ms` (default 10) in between, until
 * its stdin ends or reads a line; then it prints `{"latencies":[ms...],"failures":["..."]}` on
 * stdout and exits 0. A reply other than 200 or a failed connection is a failure, not a latency.
 */
import http from 'node:http';

const [origin, pauseArg] = process.argv.slice(2);
if (origin === undefined) {
  process.stderr.write('usage: healthz-probe <origin> [pause-ms]\n');
  process.exit(2);
}
const pauseMs = Number(pauseArg ?? 10);
const agent = new http.Agent({ keepAlive: false });
let stopped = false;
const stop = (): void => {
  stopped = true;
};
process.stdin.on('data', stop);
process.stdin.on('end', stop);

/** Resolves with the status once the reply was read to its end. */
function ask(url: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const latencies: number[] = [];
const failures: string[] = [];
while (!stopped) {
  const started = performance.now();
  try {
    const status = await ask(`${origin}/healthz`);
    if (status === 200) latencies.push(performance.now() - started);
    else failures.push(`status ${status}`);
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  }
  await new Promise((resolve) => setTimeout(resolve, pauseMs));
}
process.stdout.write(`${JSON.stringify({ latencies, failures })}\n`);
process.stdin.destroy();
