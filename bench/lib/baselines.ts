/**
 * The strongest baselines a benchmark compares the server with, all on 127.0.0.1 in the same
 * run: nginx serving a directory with sendfile and the CNCF distribution registry (Debian
 * `docker-registry`), each started from a generated config in a temp directory and stopped by
 * the run's cleanup; `undefined` with the reason when the program is not on PATH (install them
 * with `apt-get install -y nginx docker-registry`). Also the load generator every req/s figure
 * uses (wrk when on PATH, else autocannon), which checks every reply, and `interleave`, which
 * measures several servers in alternating rounds.
 */
import { accessSync, closeSync, constants, copyFileSync, linkSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { delimiter, join } from 'node:path';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { makeTempDir, spawnTracked, stopChild, isRunning } from './cleanup.js';
import { freePort, waitUntilHealthy } from './http.js';
import { collectOutput, spawnBareServer, type ServedProcess } from './server.js';

/** The absolute path of `program` in a PATH directory (also /usr/sbin and /sbin), or undefined. */
export function findOnPath(program: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const path = join(dir, program);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A baseline server, or why it is not available. */
export type Baseline = { served: ServedProcess } | { missing: string };

/** Spawns `command`, waits until `probePath` on its port answers 200, returns it as a ServedProcess. */
async function serve(name: string, command: string, args: string[], port: number, probePath: string): Promise<ServedProcess> {
  const child = spawnTracked(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collectOutput(child);
  const origin = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopChild(child);
  };
  try {
    await waitUntilHealthy(origin, {
      timeoutMs: 30_000,
      intervalMs: 20,
      path: probePath,
      failed: () => (isRunning(child) ? undefined : `${name} exited (${String(child.exitCode ?? child.signalCode)}):\n${output()}`),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin, pid: child.pid ?? -1, child, output, stop };
}

export interface NginxOptions {
  /** The directory served at `/` (files by path, with sendfile). */
  root: string;
  /** Extra directives inside `location /` (e.g. `dav_methods PUT;` for an upload baseline). */
  locationConfig?: string;
}

/**
 * Starts nginx (one worker process, like the single-threaded server it is compared with;
 * sendfile, keep-alive, no access log) from a generated config in a temp directory, serving
 * `root` (where it writes a file `healthz` to poll). Missing when nginx is not installed.
 */
export async function startNginx(opts: NginxOptions): Promise<Baseline> {
  const nginx = findOnPath('nginx');
  if (nginx === undefined) return { missing: 'nginx is not on PATH (apt-get install -y nginx)' };
  const prefix = makeTempDir(opts.root, '.nginx-');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, sub));
  writeFileSync(join(opts.root, 'healthz'), 'ok\n');
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'worker_processes 1;',
      'daemon off;',
      'master_process off;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'error.log')} error;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      '  sendfile on; tcp_nopush on; tcp_nodelay on;',
      '  keepalive_requests 1000000; keepalive_timeout 120s;',
      '  default_type application/octet-stream;',
      `  client_body_temp_path ${join(prefix, 'body')}; proxy_temp_path ${join(prefix, 'proxy')};`,
      `  fastcgi_temp_path ${join(prefix, 'fastcgi')}; uwsgi_temp_path ${join(prefix, 'uwsgi')}; scgi_temp_path ${join(prefix, 'scgi')};`,
      '  client_max_body_size 0;',
      `  server { listen 127.0.0.1:${port}; root ${opts.root}; location / { ${opts.locationConfig ?? ''} } }`,
      '}',
      '',
    ].join('\n'),
  );
  return { served: await serve('nginx', nginx, ['-p', prefix, '-c', conf], port, '/healthz') };
}

/**
 * Starts the CNCF distribution registry (`docker-registry`, 2.x) with filesystem storage in a
 * temp directory under `workDir`, from a generated config. Missing when not installed.
 */
export async function startRegistry(workDir: string): Promise<Baseline> {
  const registry = findOnPath('docker-registry');
  if (registry === undefined) return { missing: 'docker-registry is not on PATH (apt-get install -y docker-registry)' };
  const dir = makeTempDir(workDir, 'registry-');
  const port = await freePort();
  const conf = join(dir, 'config.yml');
  writeFileSync(
    conf,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  return { served: await serve('docker-registry', registry, ['serve', conf], port, '/v2/') };
}

/** A request to a baseline, answering status, headers and body. */
function call(url: string, method: string, headers: http.OutgoingHttpHeaders, body?: Buffer | Iterable<Buffer>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined || Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    const write = async (): Promise<void> => {
      for (const chunk of body) {
        if (!req.write(chunk)) await new Promise((done) => req.once('drain', done));
      }
      req.end();
    };
    write().catch((err: unknown) => {
      req.destroy();
      reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
}

/**
 * Stores a blob in the registry with a monolithic upload (POST an upload, PUT its data with
 * `?digest=`), streaming `chunks` (exactly `size` bytes whose sha256 is `sha256`). Resolves with
 * the blob's URL and the upload's duration in ms.
 */
export async function pushRegistryBlob(origin: string, repository: string, sha256: string, size: number, chunks: Iterable<Buffer>): Promise<{ url: string; ms: number }> {
  const started = performance.now();
  const session = await call(`${origin}/v2/${repository}/blobs/uploads/`, 'POST', { 'content-length': 0 });
  const location = session.headers.location;
  if (session.status !== 202 || location === undefined) throw new Error(`registry upload start answered ${session.status}: ${session.body}`);
  const target = new URL(location, origin);
  target.searchParams.set('digest', `sha256:${sha256}`);
  const put = await call(target.toString(), 'PUT', { 'content-type': 'application/octet-stream', 'content-length': size }, chunks);
  if (put.status !== 201) throw new Error(`registry blob PUT answered ${put.status}: ${put.body}`);
  return { url: `${origin}/v2/${repository}/blobs/sha256:${sha256}`, ms: performance.now() - started };
}

/** What every reply of a load test must be besides status 200. */
export interface Expected {
  /** The exact body (GET; wrk checks its length and first byte); a HEAD's body is empty. */
  body?: Buffer;
}

export interface LoadOptions {
  url: string;
  method?: 'GET' | 'HEAD';
  connections: number;
  seconds: number;
  expect: Expected;
}

/** wrk's Lua script: checks each reply's status and body, and reports the failures as JSON. */
function wrkScript(method: string, expect: Expected): string {
  const bodyCheck = expect.body === undefined ? '' : ` or #body ~= ${expect.body.length} or (#body > 0 and body:sub(1, 1) ~= string.char(${expect.body[0] ?? 0}))`;
  return [
    `wrk.method = "${method}"`,
    'local threads = {}',
    'function setup(thread) table.insert(threads, thread) end',
    'function init() bad = 0 end',
    `function response(status, headers, body) if status ~= 200${bodyCheck} then bad = bad + 1 end end`,
    'function done(summary, latency, requests)',
    '  local failed = 0',
    '  for _, t in ipairs(threads) do failed = failed + t:get("bad") end',
    '  io.write(string.format(\'\\nRESULT {"requests":%d,"seconds":%f,"bad":%d,"errors":%d}\\n\', summary.requests, summary.duration / 1e6, failed,',
    '    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))',
    'end',
    '',
  ].join('\n');
}

/**
 * Whether autocannon can check `body`: it gathers a reply's body as a string, decoding each
 * received chunk as UTF-8 on its own, so only a body of ASCII bytes (which every chunking decodes
 * to the same string, byte for byte) compares exactly.
 */
function autocannonChecks(body: Buffer | undefined): boolean {
  return body === undefined || body.every((byte) => byte < 0x80);
}

/** A load generator `loadTest` can run: a program found on PATH, or one in the bench process. */
type LoadGenerator = { kind: 'wrk' | 'ab'; path: string } | { kind: 'autocannon' | 'pool' };

/**
 * The load generator for `method` and the expected `body`: wrk and autocannon cannot read HEAD
 * replies (they wait for the body Content-Length announces), so HEAD runs on ApacheBench (`ab -i`,
 * from apache2-utils) when installed; GET on wrk when installed, else on autocannon for an ASCII
 * body; the rest on an undici Pool in the bench process.
 */
function loadGenerator(method: 'GET' | 'HEAD', body: Buffer | undefined): LoadGenerator {
  const program = findOnPath(method === 'HEAD' ? 'ab' : 'wrk');
  if (program !== undefined) return { kind: method === 'HEAD' ? 'ab' : 'wrk', path: program };
  return method === 'GET' && autocannonChecks(body) ? { kind: 'autocannon' } : { kind: 'pool' };
}

/** Which load generator `loadTest` uses for `method` and the expected `body` (see loadGenerator), in words. */
export function loadTool(method: 'GET' | 'HEAD' = 'GET', body?: Buffer): string {
  const generator = loadGenerator(method, body);
  switch (generator.kind) {
    case 'wrk':
      return 'wrk (1 thread)';
    case 'ab':
      return 'ab -k -i';
    case 'autocannon':
      return 'autocannon (in the bench process)';
    case 'pool':
      return `an undici Pool (in the bench process; apt-get install -y ${method === 'HEAD' ? 'apache2-utils for ab' : 'wrk for wrk'})`;
  }
}

/** HEAD requests with ApacheBench on keep-alive connections; every reply must be 2xx and complete. */
async function abHeads(path: string, opts: LoadOptions): Promise<number> {
  const url = new URL(opts.url).toString();
  const child = spawnTracked(path, ['-q', '-k', '-i', '-c', String(opts.connections), '-t', String(opts.seconds), '-n', '100000000', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collectOutput(child);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const text = output();
  const field = (name: string): number => Number(new RegExp(`${name}:\\s+([\\d.]+)`).exec(text)?.[1] ?? Number.NaN);
  const complete = field('Complete requests');
  const failed = field('Failed requests');
  const non2xx = Number.isNaN(field('Non-2xx responses')) ? 0 : field('Non-2xx responses');
  const seconds = field('Time taken for tests');
  if (code !== 0 || !(complete > 0) || failed !== 0 || non2xx !== 0 || !(seconds > 0)) {
    throw new Error(`ab on ${opts.url} (${String(code)}): ${complete} complete, ${failed} failed, ${non2xx} non-2xx:\n${text}`);
  }
  return complete / seconds;
}

/**
 * Requests of `opts.method` on `opts.connections` keep-alive connections of an undici Pool in the
 * bench process: every reply must be 200 and, for a GET, its body the expected bytes exactly.
 */
export async function poolLoad(opts: LoadOptions): Promise<number> {
  const url = new URL(opts.url);
  const method = opts.method ?? 'GET';
  const expected = method === 'GET' ? opts.expect.body : undefined;
  const pool = new Pool(url.origin, { connections: opts.connections, pipelining: 1 });
  const path = `${url.pathname}${url.search}`;
  let done = 0;
  let failures = 0;
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const reply = await pool.request({ method, path });
      let matches = true;
      if (expected === undefined) await reply.body.dump();
      else matches = Buffer.from(await reply.body.arrayBuffer()).equals(expected);
      if (reply.statusCode === 200 && matches) done++;
      else failures++;
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.connections }, worker));
  } finally {
    await pool.close();
  }
  if (failures > 0 || done === 0) throw new Error(`${method} load on ${opts.url}: ${done} replies as expected, ${failures} others`);
  return done / ((performance.now() - started) / 1000);
}

async function wrk(path: string, opts: LoadOptions, scriptDir: string): Promise<number> {
  const script = join(scriptDir, `wrk-${createHash('sha256').update(`${opts.method ?? 'GET'} ${opts.expect.body?.length ?? ''} ${opts.expect.body?.[0] ?? ''}`).digest('hex').slice(0, 12)}.lua`);
  writeFileSync(script, wrkScript(opts.method ?? 'GET', opts.expect));
  const child = spawnTracked(path, ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s', '-s', script, opts.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collectOutput(child);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const m = /RESULT (\{.*\})/.exec(output());
  if (code !== 0 || m?.[1] === undefined) throw new Error(`wrk on ${opts.url} failed (${String(code)}):\n${output()}`);
  const result = JSON.parse(m[1]) as { requests: number; seconds: number; bad: number; errors: number };
  if (result.bad > 0 || result.errors > 0 || result.requests === 0) {
    throw new Error(`load on ${opts.url}: ${result.requests} requests, ${result.bad} wrong replies, ${result.errors} errors`);
  }
  return result.requests / result.seconds;
}

async function cannon(opts: LoadOptions): Promise<number> {
  const result = await autocannon({
    url: opts.url,
    method: opts.method ?? 'GET',
    connections: opts.connections,
    duration: opts.seconds,
    ...(opts.expect.body !== undefined && opts.expect.body.length > 0 ? { expectBody: opts.expect.body.toString('latin1') } : {}),
  });
  const other = result.requests.total - result['2xx'];
  if (result.errors > 0 || result.timeouts > 0 || other > 0 || result.mismatches > 0 || result.requests.total === 0) {
    throw new Error(
      `load on ${opts.url}: ${result.requests.total} requests, ${result.errors} errors, ${result.timeouts} timeouts, ${other} other statuses, ${result.mismatches} wrong bodies`,
    );
  }
  return result.requests.total / result.duration;
}

/**
 * Requests per second of `opts.method` on `opts.url` under `opts.connections` keep-alive
 * connections for `opts.seconds`, on the load generator `loadTool` names. Fails when any reply
 * has another status or body, or any request failed.
 */
export async function loadTest(opts: LoadOptions, scriptDir: string): Promise<number> {
  const method = opts.method ?? 'GET';
  const generator = loadGenerator(method, method === 'GET' ? opts.expect.body : undefined);
  switch (generator.kind) {
    case 'wrk':
      return wrk(generator.path, opts, scriptDir);
    case 'ab':
      return abHeads(generator.path, opts);
    case 'autocannon':
      return cannon(opts);
    case 'pool':
      return poolLoad(opts);
  }
}

/** One server measured in `interleave`: its name and one measurement. */
export interface Contender {
  name: string;
  measure: () => Promise<number>;
}

/**
 * `items` in the order of round `r` (from 0): as given in even rounds, reversed in odd ones, so
 * that over a run each goes first as often as last and a machine or disk that drifts during the
 * run does not favour one of them.
 */
export function inRoundOrder<T>(items: readonly T[], r: number): readonly T[] {
  return r % 2 === 0 ? items : [...items].reverse();
}

/**
 * Measures every contender once per round, `rounds` times, in alternating order (inRoundOrder:
 * a slow phase of the machine hurts all of them), after one unrecorded warm-up round. Returns
 * each contender's measurements in round order.
 */
export async function interleave(contenders: readonly Contender[], rounds: number, log: (message: string) => void, unit: string): Promise<Map<string, number[]>> {
  const results = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (const c of contenders) await c.measure();
  for (let r = 0; r < rounds; r++) {
    for (const c of inRoundOrder(contenders, r)) results.get(c.name)?.push(await c.measure());
    log(`  round ${r + 1}: ${contenders.map((c) => `${c.name} ${(results.get(c.name)?.at(-1) ?? Number.NaN).toFixed(0)} ${unit}`).join(', ')}`);
  }
  return results;
}

/** A server holding the same bytes as the one under test, and the URL that serves them. */
export interface Peer {
  name: string;
  url: string;
  pid: number;
  stop: () => Promise<void>;
}

/**
 * Serves the bytes in `file` (`bytes` long, sha256 `sha256`) from every baseline available:
 * the bare Node server (`bare`: from memory for small files, streamed in 1 MiB chunks for big
 * ones), nginx (sendfile) and the registry (as a blob). Each one's reply to GET is checked
 * against `bytes` before it is used. Returns the peers (bare Node first) and a note per baseline
 * that is not installed.
 */
export async function servePeers(
  workDir: string,
  file: { path: string; sha256: string; size: number; contentType: string; bare: 'bytes' | 'file' },
  check: (name: string, url: string) => Promise<void>,
): Promise<{ peers: Peer[]; notes: string[] }> {
  const payloadFile = file.path;
  const peers: Peer[] = [];
  const notes: string[] = [];
  const add = async (name: string, served: ServedProcess, url: string): Promise<void> => {
    peers.push({ name, url, pid: served.pid, stop: () => served.stop() });
    await check(name, url);
  };
  try {
    const bare = await spawnBareServer(file.bare === 'bytes' ? { kind: 'bytes', path: payloadFile, contentType: file.contentType } : { kind: 'file', path: payloadFile });
    await add(file.bare === 'bytes' ? 'bare Node (from memory)' : 'bare Node (1 MiB chunks)', bare, bare.origin);
    const root = makeTempDir(workDir, 'nginx-root-');
    linkOrCopy(payloadFile, join(root, 'data.bin'));
    const nginx = await startNginx({ root });
    if ('missing' in nginx) notes.push(`nginx: skipped: ${nginx.missing}`);
    else await add('nginx (sendfile)', nginx.served, `${nginx.served.origin}/data.bin`);
    const registry = await startRegistry(workDir);
    if ('missing' in registry) notes.push(`registry: skipped: ${registry.missing}`);
    else {
      const { url } = await pushRegistryBlob(registry.served.origin, 'bench/blob', file.sha256, file.size, fileChunks(payloadFile));
      await add('registry', registry.served, url);
    }
  } catch (err) {
    await Promise.all(peers.map((p) => p.stop()));
    throw err;
  }
  return { peers, notes };
}

/** Hard-links `from` to `to` (a copy when they are on different filesystems). */
function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

/** The file's bytes as 1 MiB chunks, read synchronously one at a time. */
function* fileChunks(path: string): Generator<Buffer> {
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return;
      yield chunk.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}
