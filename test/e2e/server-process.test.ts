/**
 * The real `bindle-server` process (the entry the package runs, which sizes libuv's thread pool
 * and loads the bundle): start on a free port, drive it
 * over HTTP, stop it with SIGTERM, restart it on the same directory and find everything intact;
 * authenticate with htpasswd and OIDC, whose implementations the bundle loads only when configured;
 * serve /openapi.json, which the bundle loads on first request; at --log-level warn, log no
 * request but audit every write.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { loadScaffold } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { SERVER_BIN, startServerProcess } from '../helpers/server-process.js';
import { spawnServer } from '../../bench/lib/server.js';

const keyring = vec('scaffolds', 'keys', 'keyring.toml');

t.test('serve, stop, restart on the same directory', async (t) => {
  const first = await startServerProcess(t, { args: ['--keyring', keyring] });
  t.match(first.output(), /UNAUTHENTICATED, on a loopback address only/, 'says it is unauthenticated on loopback');

  let res = await fetch(`${first.origin}/healthz`);
  t.equal(res.status, 200);
  t.match(await res.json(), { status: 'OK' });
  res = await fetch(`${first.origin}/openapi.json`);
  t.equal(res.status, 200, 'the OpenAPI document, loaded on first request');
  t.match(await res.json(), { openapi: '3.1.0' });

  const v1 = loadScaffold('valid_v1');
  res = await fetch(`${first.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: v1.invoiceText });
  t.equal(res.status, 202, await res.clone().text());
  for (const parcel of v1.parcels.values()) {
    res = await fetch(`${first.url}_i/enterprise.com/warpcore/1.0.0@${parcel.sha256}`, { method: 'POST', body: parcel.data });
    t.equal(res.status, 200);
  }
  const invoiceBefore = await (await fetch(`${first.url}_i/enterprise.com/warpcore/1.0.0`)).text();
  const keysBefore = await (await fetch(`${first.url}bindle-keys`)).text();
  t.equal(statSync(join(first.directory, 'signing-keys.toml')).mode & 0o777, 0o600, 'host key file is 0600');
  t.equal(await first.stop(), 0, 'SIGTERM stops the server cleanly');

  const second = await startServerProcess(t, { directory: first.directory, args: ['--keyring', keyring] });
  t.equal(await (await fetch(`${second.url}_i/enterprise.com/warpcore/1.0.0`)).text(), invoiceBefore, 'invoice intact');
  t.equal(await (await fetch(`${second.url}bindle-keys`)).text(), keysBefore, 'same host key');
  const parcel = v1.parcels.get('parcel');
  if (parcel === undefined) throw new Error('scaffold parcel missing');
  res = await fetch(`${second.url}_i/enterprise.com/warpcore/1.0.0@${parcel.sha256}`);
  t.equal(res.status, 200);
  t.same(Buffer.from(await res.arrayBuffer()), parcel.data, 'parcel intact');
  res = await fetch(`${second.url}_q?q=warpcore`, { headers: { accept: 'application/json' } });
  t.equal(((await res.json()) as { total: number }).total, 1, 'index intact');
  res = await fetch(`${second.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(v1.invoice) });
  t.equal(res.status, 409, 'still a duplicate after restart');
});

t.test('at --log-level warn the packaged server logs no request but still audits every write', async (t) => {
  // It logs no address at warn: spawnServer gives it a free port and waits for /healthz.
  const directory = t.testdir({});
  const server = await spawnServer(directory, ['--keyring', keyring]);
  t.teardown(() => server.stop());
  const url = `${server.api}/`;
  const v1 = loadScaffold('valid_v1');
  let res = await fetch(`${url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: v1.invoiceText });
  t.equal(res.status, 202, 'invoice created');
  const parcel = [...v1.parcels.values()][0];
  if (parcel === undefined) throw new Error('scaffold parcel missing');
  res = await fetch(`${url}_i/enterprise.com/warpcore/1.0.0@${parcel.sha256}`, { method: 'POST', body: parcel.data });
  t.equal(res.status, 200);
  t.equal((await fetch(`${url}_i/enterprise.com/warpcore/1.0.0`)).status, 200);
  const stdout = server.child.stdout;
  const ended = stdout === null || stdout.readableEnded ? Promise.resolve() : new Promise((resolve) => stdout.once('end', resolve));
  await server.stop();
  await ended;
  t.equal(server.child.exitCode, 0, 'SIGTERM stops it, its last lines written');
  const lines = server
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.same(
    lines.filter((l) => l.audit === true).map(({ action, bindle, outcome, status }) => ({ action, bindle, outcome, status })),
    [
      { action: 'create', bindle: 'enterprise.com/warpcore/1.0.0', outcome: 'success', status: 202 },
      { action: 'upload', bindle: 'enterprise.com/warpcore/1.0.0', outcome: 'success', status: 200 },
    ],
    'one audit record per write, none for the read',
  );
  t.notOk(
    lines.some((l) => l.msg === 'incoming request' || l.msg === 'request completed'),
    'no request lines',
  );
});

t.test('command line', async (t) => {
  const help = spawnSync(process.execPath, [SERVER_BIN, '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /--address/);
  t.match(help.stdout, /--unauthenticated/);
  const bad = spawnSync(process.execPath, [SERVER_BIN, '--no-such-flag'], { encoding: 'utf8' });
  t.not(bad.status, 0);
  t.match(bad.stderr, /^bindle-server: .*no-such-flag/m);
  const missing = join(t.testdirName, 'no-such-keyring.toml');
  for (const [how, args, env] of [
    ['--keyring', ['--keyring', missing], {}],
    ['BINDLE_KEYRING', [], { BINDLE_KEYRING: missing }],
  ] as const) {
    const noKeyring = spawnSync(process.execPath, [SERVER_BIN, '--address', '127.0.0.1:0', '--directory', join(t.testdirName, 'k'), ...args], {
      encoding: 'utf8', env: { ...process.env, ...env },
    });
    t.not(noKeyring.status, 0, `a keyring named by ${how} that does not exist stops start-up`);
    t.match(noKeyring.stderr, new RegExp(`^bindle-server: [^\\n]*${how}[^\\n]*no-such-keyring\\.toml does not exist\\n$`), 'one clear line naming the option and the file');
  }
  const open = spawnSync(process.execPath, [SERVER_BIN, '--address', '0.0.0.0:0', '--directory', join(t.testdirName, 'd')], { encoding: 'utf8' });
  t.not(open.status, 0, 'refuses to serve unauthenticated on a public address');
  t.match(open.stderr, /--unauthenticated/);
});

t.test('htpasswd and OIDC authentication in the packaged server', async (t) => {
  const issuer = 'https://issuer.bindle.test';
  const clientId = 'bindle-server';
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwks = join(t.testdir(), 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  const htpasswd = join(t.testdirName, 'htpasswd');
  writeFileSync(htpasswd, readFileSync(vec('data', 'htpasswd')));
  const server = await startServerProcess(t, {
    args: [
      '--keyring', keyring, '--htpasswd-file', htpasswd,
      '--oidc-issuer-url', issuer, '--oidc-client-id', clientId, '--oidc-device-url', `${issuer}/device`, '--oidc-jwks-file', jwks,
    ],
  });
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(issuer).setAudience(clientId).setSubject('user-1').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const post = (scaffold: string, authorization?: string): Promise<Response> =>
    fetch(`${server.url}_i`, {
      method: 'POST',
      headers: { 'content-type': 'application/toml', ...(authorization === undefined ? {} : { authorization }) },
      body: loadScaffold(scaffold).invoiceText,
    });

  t.equal((await post('valid_v1')).status, 403, 'anonymous writes are refused');
  t.equal((await post('valid_v1', `Basic ${Buffer.from('admin:wrong').toString('base64')}`)).status, 401, 'a wrong password');
  t.equal((await post('valid_v1', `Bearer ${token.slice(0, -4)}AAAA`)).status, 401, 'a JWT with a broken signature');
  t.equal((await post('valid_v1', `Basic ${Buffer.from('admin:sw0rdf1sh').toString('base64')}`)).status, 202, 'htpasswd user');
  t.equal((await post('valid_v2', `Bearer ${token}`)).status, 202, 'OIDC bearer token');
  t.equal((await fetch(`${server.url}_q?q=warpcore`)).status, 200, 'anyone may read');

  appendFileSync(htpasswd, 'dave:$apr1$abcdefgh$0123456789abcdefghijkl\n');
  const logged = /"level":50[^\n]*htpasswd file reload failed: the previous version stays in force/;
  // The file is looked at by requests at most once a second, and the log line reaches the
  // process's output after the reply may have: Basic requests are sent until it is there.
  for (let waited = 0; !logged.test(server.output()) && waited < 10_000; waited += 100) {
    t.equal((await post('valid_v1', `Basic ${Buffer.from('admin:sw0rdf1sh').toString('base64')}`)).status, 409, 'an htpasswd file changed into one that cannot be used keeps the last good one');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.match(server.output(), logged, 'and the server logs it at error');
});

/** Threads of a running process (Linux: its entries in /proc/PID/task). */
function threadsOf(pid: number | undefined): number {
  if (pid === undefined) throw new Error('the server process has no pid');
  return readdirSync(`/proc/${pid}/task`).length;
}

const procSkip = existsSync('/proc/self/task') ? false : 'counting threads needs /proc (Linux)';
t.test("the entry gives libuv's thread pool 16 threads, unless UV_THREADPOOL_SIZE says otherwise", { skip: procSkip }, async (t) => {
  // The pool starts all its threads when the server first touches its data directory, before it listens.
  const sized = await startServerProcess(t, { withoutPreload: true, env: { UV_THREADPOOL_SIZE: undefined } });
  const defaults = await startServerProcess(t, { withoutPreload: true, env: { UV_THREADPOOL_SIZE: '4' } });
  const wider = await startServerProcess(t, { withoutPreload: true, env: { UV_THREADPOOL_SIZE: '24' } });
  const [ours, four, twentyFour] = [sized, defaults, wider].map((s) => threadsOf(s.child.pid));
  t.equal((ours ?? 0) - (four ?? 0), 12, `16 pool threads by default, 4 with UV_THREADPOOL_SIZE=4 (${ours} and ${four} threads in all)`);
  t.equal((twentyFour ?? 0) - (four ?? 0), 20, `24 with UV_THREADPOOL_SIZE=24 (${twentyFour} threads in all)`);
  t.equal((await fetch(`${sized.origin}/healthz`)).status, 200, 'and it serves');
});

t.test('a `_q` search that would scan the index is matched on the bundle\'s query worker thread; a cheap one on the main thread', { skip: procSkip }, async (t) => {
  const server = await startServerProcess(t, { args: ['--keyring', keyring] });
  const v1 = loadScaffold('valid_v1');
  const created = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: v1.invoiceText });
  t.equal(created.status, 202, await created.clone().text());
  const total = async (query: string): Promise<number> => {
    const res = await fetch(`${server.url}_q?${query}`, { headers: { accept: 'application/json' } });
    t.equal(res.status, 200, query);
    return ((await res.json()) as { total: number }).total;
  };
  const before = threadsOf(server.child.pid);
  t.equal(await total('q=warpcore'), 1, 'a term of the full-text index, on few invoices');
  t.equal(threadsOf(server.child.pid), before, 'answered without a new thread');
  t.equal(await total('q=w'), 1, 'a one-letter term, matched by scanning');
  t.equal(await total('q=zz'), 0, 'a two-letter term that matches nothing');
  const after = threadsOf(server.child.pid);
  t.ok(after > before, `answered by a query worker thread, started for it, its module loaded from beside the bundle (threads: ${before}, then ${after})`);
});
