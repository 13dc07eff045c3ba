/**
 * The benchmark's comparison servers (bench/bin/bare-http-server.ts, bare-upload-server.ts) answer what the benchmark
 * relies on: the same bytes, the same file, and the sha256 of an uploaded body, with or without
 * a disk write, and with the parcel store's guarantees (verified, linked, never replaced); nginx and the registry (when installed) serve the same bytes; and the load
 * generator fails on a wrong reply. A baseline that silently did less would flatter every ratio.
 * Also: a benchmark server asked to run at the default log level logs its requests to its file.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { slices } from '../../bench/lib/data.js';
import { expectStatus, uploadChunks } from '../../bench/lib/http.js';
import { environmentWithout, spawnBareServer, spawnBareUploadServer, spawnServer } from '../../bench/lib/server.js';
import { findOnPath, loadTest, loadTool, servePeers } from '../../bench/lib/baselines.js';

const body = Buffer.from(Array.from({ length: 3 * 2 ** 20 + 17 }, (_, i) => (i * 31) % 251));
const digest = createHash('sha256').update(body).digest('hex');

/** The body in 100 kB slices: writes that do not line up with the servers' 1 MiB batches. */
const pieces = (data: Buffer): Generator<Buffer> => slices(data, 100_000);

t.test('receive: answers the sha256 of the body', async (t) => {
  const server = await spawnBareServer({ kind: 'receive' });
  t.teardown(() => server.stop());
  const result = await uploadChunks(server.origin, body.length, pieces(body));
  t.equal(result.status, 200);
  t.equal(result.body, digest);
});

t.test('sink: answers the sha256 and keeps a file of the body, synced in the background past 8 MiB', async (t) => {
  const dir = t.testdir();
  const server = await spawnBareServer({ kind: 'sink', dir });
  t.teardown(() => server.stop());
  const large = Buffer.concat([body, body, body, body.subarray(0, 2 ** 20)]);
  for (const data of [body, large]) {
    const result = await uploadChunks(server.origin, data.length, pieces(data));
    t.equal(result.status, 200);
    t.equal(result.body, createHash('sha256').update(data).digest('hex'));
  }
  t.same(readdirSync(dir).sort(), ['upload-0', 'upload-1']);
  t.ok(readFileSync(join(dir, 'upload-0')).equals(body), 'the first body, byte for byte');
  t.ok(readFileSync(join(dir, 'upload-1')).equals(large), 'the second, written in batches past a background sync');
});

t.test('upload server: answers the sha256 and keeps one file per body, of its bytes', async (t) => {
  const dir = t.testdir();
  const server = await spawnBareUploadServer(dir);
  t.teardown(() => server.stop());
  const small = body.subarray(0, 1024);
  for (const data of [small, body]) {
    const result = await uploadChunks(server.origin, data.length, pieces(data));
    t.equal(result.status, 200);
    t.equal(result.body, createHash('sha256').update(data).digest('hex'));
  }
  const files = readdirSync(dir).sort();
  t.equal(files.length, 2);
  t.same(files.map((f) => readFileSync(join(dir, f)).length).sort((a, b) => a - b), [small.length, body.length]);
});

t.test('durable upload server: verifies, links each body to <sha256>.dat, leaves no temp file, never replaces one', async (t) => {
  const dir = t.testdir();
  const server = await spawnBareUploadServer(dir, 'durable');
  t.teardown(() => server.stop());
  const small = body.subarray(0, 1024);
  const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
  for (const data of [small, body]) {
    const result = await uploadChunks(`${server.origin}/${sha(data)}`, data.length, pieces(data));
    t.equal(result.status, 200);
    t.equal(result.body, sha(data));
    t.ok(readFileSync(join(dir, `${sha(data)}.dat`)).equals(data), 'the parcel holds the body');
  }
  t.same(readdirSync(join(dir, '.tmp')), [], 'no temp name is left');
  const other = body.subarray(1, 1025);
  const wrong = await uploadChunks(`${server.origin}/${sha(other)}`, small.length, pieces(small));
  t.equal(wrong.status, 500, 'a body whose digest is not its name is refused');
  t.notOk(existsSync(join(dir, `${sha(other)}.dat`)), 'and nothing is linked');
  t.same(readdirSync(join(dir, '.tmp')), [], 'nor left in a temp file');
  const again = await uploadChunks(`${server.origin}/${sha(small)}`, small.length, pieces(small));
  t.equal(again.status, 500, 'a parcel that exists is not written again');
});

t.test('bytes and file: answer the given bytes', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'reply.bin');
  writeFileSync(path, body);
  const bytes = await spawnBareServer({ kind: 'bytes', path, contentType: 'application/toml' });
  t.teardown(() => bytes.stop());
  const file = await spawnBareServer({ kind: 'file', path });
  t.teardown(() => file.stop());
  const fromBytes = await expectStatus(200, bytes.origin);
  t.equal(fromBytes.headers['content-type'], 'application/toml');
  t.ok(fromBytes.body.equals(body));
  t.ok((await expectStatus(200, file.origin)).body.equals(body));
});

t.test('a benchmark server at the default log level writes its request lines to its file; at warn, none', async (t) => {
  const dir = t.testdir({ data: {} });
  const logFile = join(dir, 'server.log');
  const warn = await spawnServer(join(dir, 'data'));
  t.teardown(() => warn.stop());
  const info = await spawnServer(join(dir, 'data'), [], { infoLogFile: logFile });
  t.teardown(() => info.stop());
  for (const server of [warn, info]) await expectStatus(200, `${server.origin}/healthz`);
  await expectStatus(200, `${info.origin}/healthz?second`);
  const requests = (): unknown[] => readFileSync(logFile, 'utf8').split('\n').filter((line) => line.includes('"request completed"'));
  for (let waited = 0; requests().length < 2 && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  t.ok(requests().length >= 2, 'the info server logged its requests to the file');
  t.notMatch(info.output(), /request completed/, 'not to the benchmark');
  t.notMatch(warn.output(), /request completed/, 'the warn server logs no request');
});

t.test('servers started with environmentWithout(name) run without that variable, and by default with it', async (t) => {
  const name = 'BINDLE_BENCH_TEST_MARK';
  process.env.BINDLE_BENCH_TEST_MARK = 'set';
  t.teardown(() => {
    delete process.env.BINDLE_BENCH_TEST_MARK;
  });
  const environOf = (pid: number): string[] => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  const env = environmentWithout(name);
  t.equal(env[name], undefined, 'the copy lacks it');
  t.equal(process.env[name], 'set', 'this process keeps it');
  const dir = t.testdir({ with: {}, without: {} });
  const server = await spawnServer(join(dir, 'with'));
  t.teardown(() => server.stop());
  const serverWithout = await spawnServer(join(dir, 'without'), [], { env });
  t.teardown(() => serverWithout.stop());
  const bare = await spawnBareServer({ kind: 'receive' });
  t.teardown(() => bare.stop());
  const bareWithout = await spawnBareServer({ kind: 'receive' }, env);
  t.teardown(() => bareWithout.stop());
  for (const [what, served, expected] of [['server', server, true], ['server, env given', serverWithout, false], ['bare server', bare, true], ['bare server, env given', bareWithout, false]] as const) {
    t.equal(environOf(served.pid).includes(`${name}=set`), expected, `${what}: ${expected ? 'has' : 'lacks'} the variable`);
    t.ok(environOf(served.pid).some((entry) => entry.startsWith('PATH=')), `${what}: has the rest of the environment`);
  }
});

t.test("a connection left idle past Node's 5 s default (while other contenders run) is still served", async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'reply.bin');
  writeFileSync(path, 'idle');
  const server = await spawnBareServer({ kind: 'bytes', path, contentType: 'text/plain' });
  t.teardown(() => server.stop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (): Promise<{ status: number | undefined; reused: boolean }> =>
    new Promise((resolve, reject) => {
      const req = http.get(server.origin, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket }));
      });
      req.on('error', reject);
    });
  t.equal((await get()).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const again = await get();
  t.equal(again.status, 200);
  t.ok(again.reused, 'over the same connection, which the server kept open');
});

t.test('nginx and the registry serve the same bytes (skipped when not installed)', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'data.bin');
  writeFileSync(path, body);
  const installed = ['nginx', 'docker-registry'].filter((program) => findOnPath(program) !== undefined);
  if (installed.length === 0) {
    t.pass('neither nginx nor docker-registry is installed (apt-get install -y nginx docker-registry); the benchmark skips them with a note');
    return;
  }
  const served = await servePeers(dir, { path, sha256: digest, size: body.length, contentType: 'application/octet-stream', bare: 'file' }, async (name, url) => {
    t.ok((await expectStatus(200, url)).body.equals(body), `${name} answers the bytes`);
  });
  t.teardown(() => Promise.all(served.peers.map((p) => p.stop())));
  t.equal(served.peers.length, 1 + installed.length, `bare Node and ${installed.join(', ')} serve; notes: ${served.notes.join('; ') || 'none'}`);
});

t.test('loadTest checks every reply: a wrong body or status fails the measurement', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'small.bin');
  const small = body.subarray(0, 1024);
  writeFileSync(path, small);
  const bytes = await spawnBareServer({ kind: 'bytes', path, contentType: 'application/octet-stream' });
  t.teardown(() => bytes.stop());
  const rate = await loadTest({ url: bytes.origin, connections: 2, seconds: 1, expect: { body: small } }, dir);
  t.ok(rate > 0, `GET: ${rate.toFixed(0)} req/s`);
  t.ok((await loadTest({ url: bytes.origin, method: 'HEAD', connections: 2, seconds: 1, expect: {} }, dir)) > 0, 'HEAD');
  await t.rejects(loadTest({ url: bytes.origin, connections: 2, seconds: 1, expect: { body: body.subarray(0, 1000) } }, dir), /load on/);
});

t.test('without wrk or ab on PATH, loadTest checks every byte of a binary body, and autocannon a text one', async (t) => {
  const dir = t.testdir();
  const binary = body.subarray(0, 1024);
  const text = Buffer.from('bindleVersion = "1.0.0"\n'.repeat(40));
  writeFileSync(join(dir, 'binary.bin'), binary);
  writeFileSync(join(dir, 'text.toml'), text);
  const servers = await Promise.all([join(dir, 'binary.bin'), join(dir, 'text.toml')].map((path) => spawnBareServer({ kind: 'bytes', path, contentType: 'application/octet-stream' })));
  t.teardown(() => Promise.all(servers.map((s) => s.stop())));
  const [binaryServer, textServer] = servers;
  if (binaryServer === undefined || textServer === undefined) throw new Error('bare servers did not start');
  const path = process.env.PATH;
  process.env.PATH = t.testdir();
  t.teardown(() => {
    process.env.PATH = path;
  });
  t.match(loadTool('GET', binary), /undici Pool/, 'a binary body: the undici pool');
  t.match(loadTool('GET', text), /autocannon/, 'an ASCII body: autocannon');
  t.match(loadTool('HEAD'), /undici Pool/, 'HEAD: the undici pool');
  const load = (url: string, expected: Buffer, method: 'GET' | 'HEAD' = 'GET'): Promise<number> =>
    loadTest({ url, method, connections: 2, seconds: 1, expect: method === 'GET' ? { body: expected } : {} }, dir);
  t.ok((await load(binaryServer.origin, binary)) > 0, 'the binary body as served');
  t.ok((await load(binaryServer.origin, binary, 'HEAD')) > 0, 'HEAD');
  t.ok((await load(textServer.origin, text)) > 0, 'the text body as served');
  const changed = Buffer.from(binary);
  changed[700] = (changed[700] ?? 0) ^ 1;
  await t.rejects(load(binaryServer.origin, changed), /load on/, 'one byte off in the middle of a binary body fails');
  const changedText = Buffer.from(text);
  changedText[500] = 0x41;
  await t.rejects(load(textServer.origin, changedText), /load on/, 'one byte off in a text body fails');
});
