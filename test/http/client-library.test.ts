/**
 * BindleClient against a real listening server (in-process, on real storage) and against small
 * node:http servers that misbehave on purpose: every endpoint, error mapping, invoice
 * verification, Basic and bearer auth, retries, timeouts and parcel re-hashing.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, pipeline, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Label } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { createSecretKey, publicKeyEntry } from '../../core/signing/keys.js';
import { Keyring } from '../../core/signing/keyring.js';
import { parseStrategy } from '../../core/signing/verification.js';
import { BindleClient, type ClientOptions } from '../../client/lib/index.js';
import { AnonymousGetAuthorizer, HtpasswdAuthenticator, StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { loadScaffold, creatorKeyring, sha256, signedInvoice } from '../helpers/bindles.js';
import { serveLocally } from '../helpers/local-server.js';
import { vec } from '../helpers/paths.js';
import { makeTestApp, type TestApp, type TestAppOptions } from '../helpers/test-app.js';

interface Served {
  ta: TestApp;
  url: string;
}

async function serve(t: Test, opts: TestAppOptions = {}): Promise<Served> {
  const ta = await makeTestApp(t, opts);
  await ta.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = ta.app.server.address() as AddressInfo;
  return { ta, url: `http://127.0.0.1:${port}/v1/` };
}

function client(t: Test, opts: ClientOptions): BindleClient {
  const c = new BindleClient(opts);
  t.teardown(() => c.close());
  return c;
}

/** A keyring trusting the reference creator and the test server's host key. */
function trusting(ta: TestApp): Keyring {
  const host = new Keyring();
  host.add(publicKeyEntry(ta.hostKey));
  return creatorKeyring().merge(host);
}

/** A plain node:http server; `handler` gets the 1-based request number. Closed at teardown. */
async function fakeServer(
  t: Test,
  handler: (req: IncomingMessage, res: ServerResponse, n: number) => void,
): Promise<{ url: string; count: () => number }> {
  let n = 0;
  const origin = await serveLocally(t, (req, res) => handler(req, res, ++n));
  return { url: `${origin}/v1/`, count: () => n };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const alpha = { name: 'alpha.txt', data: Buffer.from('alpha parcel') };
const bravo = { name: 'bravo.bin', data: Buffer.alloc(300_000, 0x62), mediaType: 'application/octet-stream' };

function labelOf(p: { name: string; data: Buffer; mediaType?: string }): Label {
  return { sha256: sha256(p.data), mediaType: p.mediaType ?? 'text/plain', name: p.name, size: p.data.length };
}

t.test('every endpoint, happy path', async (t) => {
  const { ta, url } = await serve(t);
  const c = client(t, { baseUrl: url.replace(/\/$/, ''), keyring: trusting(ta) });
  t.equal(c.baseUrl, url, 'a trailing slash is added');

  const health = await c.health();
  t.same(health, { status: 'OK', version: 'test' });

  const keys = await c.getHostKeys();
  t.equal(keys.key?.length, 1);
  t.same(keys.key?.[0]?.roles, ['host']);
  t.equal((await c.getHostKeys(['creator'])).key?.length ?? 0, 0, 'no creator keys on the server');

  const id = 'example.com/client/lib/1.0.0';
  const invoice = signedInvoice('example.com/client/lib', '1.0.0', [alpha, bravo], { description: 'client library test' });
  const made = await c.createInvoice(invoice);
  t.equal(made.created, false, '202: parcels missing');
  t.same(made.missing.map((l) => l.sha256).sort(), [sha256(alpha.data), sha256(bravo.data)].sort());
  t.equal(made.invoice.signature?.length, 2, 'the server added its host signature');

  t.equal(await c.invoiceExists(id), true);
  t.equal(await c.invoiceExists('example.com/client/nope/1.0.0'), false);
  t.equal((await c.getMissingParcels(id)).length, 2);
  t.equal(await c.parcelExists(id, sha256(alpha.data)), false);

  t.equal(await c.createParcel(id, labelOf(alpha), alpha.data), 'created');
  t.equal(await c.createParcel(id, labelOf(alpha), alpha.data), 'exists', '409 means it is already there');
  const chunks = [bravo.data.subarray(0, 100_000), bravo.data.subarray(100_000)];
  t.equal(await c.createParcel(id, labelOf(bravo), () => Readable.from(chunks)), 'created', 'streamed from a factory');
  t.equal(await c.createParcel(id, labelOf(bravo), () => Readable.from(chunks)), 'exists', 'a streamed upload that is refused early');
  t.equal(await c.parcelExists(id, sha256(alpha.data)), true);
  t.same(await c.getMissingParcels(id), []);

  const fetched = await c.getInvoice(id);
  t.equal(fetched.bindle.description, 'client library test');
  t.equal(fetched.signature?.length, 2);

  t.same(await collect(await c.getParcel(id, labelOf(bravo))), bravo.data);
  const dir = t.testdir();
  const progress: number[] = [];
  await c.downloadParcel(id, labelOf(bravo), join(dir, 'deep', 'bravo.bin'), { onProgress: (n) => progress.push(n) });
  t.same(await readFile(join(dir, 'deep', 'bravo.bin')), bravo.data);
  t.equal(progress.at(-1), bravo.data.length, 'progress reaches the full size');
  t.same(await readdir(join(dir, 'deep')), ['bravo.bin'], 'no temp file left');
  t.equal((await stat(join(dir, 'deep', 'bravo.bin'))).mode & 0o777, 0o644, 'mode 0644 by default');
  await c.downloadParcel(id, labelOf(bravo), join(dir, 'cache', 'bravo.bin'), { mode: 0o444, durable: false });
  t.same(await readFile(join(dir, 'cache', 'bravo.bin')), bravo.data, 'without fsync: the same checked bytes');
  t.equal((await stat(join(dir, 'cache', 'bravo.bin'))).mode & 0o777, 0o444, 'the mode asked for');
  t.same(await readdir(join(dir, 'cache')), ['bravo.bin']);

  const second = await c.createInvoice(signedInvoice('example.com/client/lib', '1.1.0', [alpha]));
  t.equal(second.created, true, '201: every parcel already present');
  t.same(second.missing, []);

  const q = await c.query({ query: 'example.com/client', strict: true });
  t.equal(q.total, 2);
  t.same(q.invoices.map((i) => i.bindle.version), ['1.1.0', '1.0.0']);
  const ranged = await c.query({ query: 'client', version: '^1.1.0', limit: 1, offset: 0 });
  t.same(ranged.invoices.map((i) => i.bindle.version), ['1.1.0']);

  await c.yankInvoice(id);
  await c.yankInvoice(id);
  t.pass('yank is idempotent');
  await t.rejects(c.getInvoice(id), { code: 'yanked' });
  t.equal((await c.getInvoice(id, { yanked: true })).yanked, true);
  t.equal(await c.invoiceExists(id), true, 'a yanked invoice still exists');
  t.same(await collect(await c.getParcel(id, labelOf(alpha), { yanked: true })), alpha.data);
  t.equal((await c.query({ query: 'example.com/client', strict: true })).total, 1, 'yanked are not listed');
  t.equal((await c.query({ query: 'example.com/client', strict: true, yanked: true })).total, 2);

  for (const [name, version] of [['example.com/käse', '1.0.0'], ['example.com/build', '1.0.0+build.7']] as const) {
    const inv = signedInvoice(name, version, [alpha]);
    t.equal((await c.createInvoice(inv)).created, true, `${name}/${version} created`);
    t.equal((await c.getInvoice(`${name}/${version}`)).bindle.version, version, `${name}/${version} fetched`);
    t.same(await collect(await c.getParcel(`${name}/${version}`, labelOf(alpha))), alpha.data);
  }
});

t.test('parcel requests for ids in turn each go to their own id\'s path; an invalid id fails every time', async (t) => {
  const paths: string[] = [];
  const { url } = await fakeServer(t, (req, res) => {
    paths.push(req.url ?? '');
    req.resume();
    res.writeHead(409, { 'content-type': 'application/json' });
    res.end('{"error":"exists","code":"already_exists"}');
  });
  const c = client(t, { baseUrl: url, retries: 0 });
  const label = labelOf(alpha);
  const ids = ['example.com/käse/1.0.0', 'example.com/build/1.0.0+build.7', 'example.com/käse/1.0.0', 'example.com/käse/2.0.0'];
  for (const id of ids) t.equal(await c.createParcel(id, label, alpha.data), 'exists', id);
  t.same(paths, [
    `/v1/_i/example.com/k%C3%A4se/1.0.0@${label.sha256}`,
    `/v1/_i/example.com/build/1.0.0+build.7@${label.sha256}`,
    `/v1/_i/example.com/k%C3%A4se/1.0.0@${label.sha256}`,
    `/v1/_i/example.com/k%C3%A4se/2.0.0@${label.sha256}`,
  ]);
  for (let i = 0; i < 2; i++) await t.rejects(c.createParcel('no-version', label, alpha.data), { code: 'invalid_id' }, `an invalid id, try ${i + 1}`);
  t.equal(await c.createParcel(ids[0] ?? '', label, alpha.data), 'exists', 'and the valid one still works after it');
  t.equal(paths.length, 5, 'the invalid id sent nothing');
});

t.test('errors are mapped from the server', async (t) => {
  const { url } = await serve(t);
  const c = client(t, { baseUrl: url });
  await t.rejects(c.getInvoice('example.com/missing/1.0.0'), {
    code: 'not_found',
    message: 'fetching invoice example.com/missing/1.0.0: invoice example.com/missing/1.0.0 not found',
  });
  const invoice = signedInvoice('example.com/errors', '1.0.0', [alpha]);
  await c.createInvoice(invoice);
  await t.rejects(c.createInvoice(invoice), { code: 'already_exists', message: /^creating invoice example\.com\/errors\/1\.0\.0: / });
  await t.rejects(c.createParcel('example.com/errors/1.0.0', labelOf(bravo), bravo.data), {
    code: 'parcel_not_on_invoice',
    message: new RegExp(`is not listed on invoice example.com/errors/1.0.0`),
  });
  await t.rejects(c.query({ version: '>=>=nonsense' }), { code: 'invalid_query', message: /^querying invoices: / });
  const unsigned = signedInvoice('example.com/unsigned', '1.0.0', []);
  delete unsigned.signature;
  await t.rejects(c.createInvoice(unsigned), { code: 'unverified', message: /no signatures/ });
  await t.rejects(c.createInvoice({ ...invoice, yanked: true, bindle: { ...invoice.bindle, version: '2.0.0' } }), { code: 'yanked_create' });
  await c.yankInvoice('example.com/errors/1.0.0');
  await t.rejects(c.getInvoice('example.com/errors/1.0.0'), { code: 'yanked', message: /has been yanked/ });
  await t.rejects(c.createParcel('example.com/errors/1.0.0', labelOf(alpha), alpha.data), { code: 'yanked' });
  await t.rejects(c.getParcel('example.com/errors/1.0.0', labelOf(alpha)), { code: 'yanked' });

  // Checked before any request is made.
  await t.rejects(c.getInvoice('no-version'), { code: 'invalid_id' });
  await t.rejects(c.getInvoice('example.com/x/v1'), { code: 'invalid_version' });
  await t.rejects(c.parcelExists('example.com/x/1.0.0', 'ABC'), { code: 'invalid_id' });
  await t.rejects(c.createParcel('example.com/errors/1.0.0', labelOf(alpha), Buffer.from('alpha parcez')), { code: 'digest_mismatch' });
  t.throws(() => new BindleClient({ baseUrl: 'ftp://example.com/' }), { code: 'invalid_config' });
  t.throws(() => new BindleClient({ baseUrl: url, concurrency: 0 }), { code: 'invalid_config' });

  const gone = client(t, { baseUrl: 'http://127.0.0.1:1/v1/', retries: 1 });
  await t.rejects(gone.health(), { code: 'unavailable', message: /checking server health: cannot reach http:\/\/127\.0\.0\.1:1\/healthz/ });
});

t.test('reference-style errors without a code are mapped from the status', async (t) => {
  const fake = await fakeServer(t, (req, res) => {
    const status = Number(/status=(\d+)/.exec(decodeURIComponent(req.url ?? ''))?.[1] ?? '500');
    res.writeHead(status, { 'content-type': 'application/toml' }).end(`error = "the reference says ${status}"\n`);
  });
  const c = client(t, { baseUrl: fake.url, retries: 0 });
  const cases: Array<[number, string]> = [[400, 'bad_request'], [401, 'unauthenticated'], [403, 'forbidden'], [404, 'not_found'], [409, 'already_exists'], [500, 'internal'], [503, 'unavailable']];
  for (const [status, code] of cases) {
    await t.rejects(c.query({ query: `status=${status}` }), { code, message: `querying invoices: the reference says ${status}` }, String(status));
  }
});

t.test('invoices are verified against the keyring', async (t) => {
  const { ta, url } = await serve(t);
  const writer = client(t, { baseUrl: url });
  await writer.createInvoice(loadScaffold('valid_v1').invoice);
  const id = 'enterprise.com/warpcore/1.0.0';

  const hostOnly = new Keyring();
  hostOnly.add(publicKeyEntry(ta.hostKey));
  await t.rejects(client(t, { baseUrl: url, keyring: hostOnly }).getInvoice(id), {
    code: 'unknown_signing_key',
    message: /^fetching invoice enterprise\.com\/warpcore\/1\.0\.0: it failed verification: /,
  });
  const stranger = new Keyring();
  stranger.add(publicKeyEntry(createSecretKey('Stranger', ['creator'])));
  await t.rejects(client(t, { baseUrl: url, keyring: stranger }).getInvoice(id), { code: 'unknown_signing_key' });
  await t.rejects(client(t, { baseUrl: url, keyring: creatorKeyring() }).getInvoice(id), { code: 'unknown_signing_key' }, 'greedy: the host key must be known too');
  const creative = client(t, { baseUrl: url, keyring: creatorKeyring(), strategy: parseStrategy('CreativeIntegrity') });
  t.equal((await creative.getInvoice(id)).bindle.name, 'enterprise.com/warpcore', 'CreativeIntegrity only checks the creator');
  t.ok(await client(t, { baseUrl: url, keyring: stranger }).getInvoice(id, { verify: false }), 'verify: false skips it');
  await t.rejects(client(t, { baseUrl: url }).getInvoice(id, { verify: true }), { code: 'invalid_config' });

  const original = loadScaffold('valid_v1').invoiceText;
  const tampered = original.replace(/sha256 = "[0-9a-f]{64}"/, `sha256 = "${sha256('swapped')}"`);
  t.not(tampered, original);
  const fake = await fakeServer(t, (req, res) => {
    const body = req.url?.includes('warpcore') === true ? tampered : renderInvoice(loadScaffold('valid_v2').invoice);
    res.writeHead(200, { 'content-type': 'application/toml' }).end(body);
  });
  const victim = client(t, { baseUrl: fake.url, keyring: creatorKeyring(), strategy: parseStrategy('CreativeIntegrity') });
  await t.rejects(victim.getInvoice(id), { code: 'unverified', message: /does not verify/ }, 'a tampered parcel list');
  await t.rejects(victim.getInvoice('enterprise.com/other/1.0.0'), { code: 'unverified', message: /answered with invoice enterprise\.com\/warpcore\/2\.0\.0 instead/ });
});

t.test('invoices are sent in JSON, and asked for in JSON unless their bytes are wanted', async (t) => {
  const invoice = loadScaffold('valid_v1').invoice;
  const seen: Array<{ method: string; contentType?: string; accept?: string; body: string }> = [];
  const fake = await fakeServer(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', contentType: req.headers['content-type'], accept: req.headers.accept, body: Buffer.concat(chunks).toString('utf8') });
      if (req.method === 'POST') {
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ invoice: JSON.parse(renderInvoice(invoice, 'json')) as unknown }));
        return;
      }
      // The reference answers TOML whatever was asked for: understood either way.
      const json = req.headers.accept === 'application/json' && seen.length === 2;
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/toml' }).end(renderInvoice(invoice, json ? 'json' : 'toml'));
    });
  });
  const c = client(t, { baseUrl: fake.url });
  t.equal((await c.createInvoice(invoice)).invoice.bindle.name, 'enterprise.com/warpcore');
  t.equal((await c.getInvoice('enterprise.com/warpcore/1.0.0')).bindle.version, '1.0.0', 'a JSON reply');
  t.equal((await c.getInvoice('enterprise.com/warpcore/1.0.0')).bindle.version, '1.0.0', 'a TOML reply to the same request');
  const { bytes } = await c.getInvoiceBytes('enterprise.com/warpcore/1.0.0');
  t.equal(bytes.toString('utf8'), renderInvoice(invoice, 'toml'), 'the bytes are the TOML the server stores');
  t.match(seen[0], { method: 'POST', contentType: 'application/json' });
  t.same(JSON.parse(seen[0]?.body ?? ''), JSON.parse(renderInvoice(invoice, 'json')), 'the invoice, in JSON');
  t.same(seen.slice(1).map((r) => r.accept), ['application/json', 'application/json', 'application/toml']);
});

t.test('Basic and bearer auth', async (t) => {
  const token = 'ci-token-0123456789';
  const { url } = await serve(t, {
    authenticator: await HtpasswdAuthenticator.load(vec('data', 'htpasswd')),
    authorizer: new AnonymousGetAuthorizer(),
  });
  const invoice = signedInvoice('example.com/auth', '1.0.0', [alpha]);
  const anonymous = client(t, { baseUrl: url });
  await t.rejects(anonymous.createInvoice(invoice), { code: 'forbidden' });
  const wrong = client(t, { baseUrl: url, credentials: { kind: 'basic', user: 'admin', password: 'swordfish' } });
  await t.rejects(wrong.createInvoice(invoice), { code: 'unauthenticated' });
  await t.rejects(wrong.getInvoice('example.com/auth/1.0.0'), { code: 'unauthenticated' }, 'bad credentials fail reads too');
  const admin = client(t, { baseUrl: url, credentials: { kind: 'basic', user: 'admin', password: 'sw0rdf1sh' } });
  t.same((await admin.createInvoice(invoice)).missing.length, 1);
  t.equal(await admin.createParcel('example.com/auth/1.0.0', labelOf(alpha), alpha.data), 'created');
  t.equal((await anonymous.getInvoice('example.com/auth/1.0.0')).bindle.name, 'example.com/auth', 'anonymous reads are allowed');

  const bearer = await serve(t, {
    authenticator: StaticTokenAuthenticator.parse(`ci:${tokenDigest(token)}\n`, 'test tokens'),
    authorizer: new AnonymousGetAuthorizer(),
  });
  const withToken = client(t, { baseUrl: bearer.url, credentials: { kind: 'bearer', token } });
  t.equal((await withToken.createInvoice(invoice)).created, false);
  const badToken = client(t, { baseUrl: bearer.url, credentials: { kind: 'bearer', token: 'nope' } });
  await t.rejects(badToken.yankInvoice('example.com/auth/1.0.0'), { code: 'unauthenticated' });
});

t.test('with the default retries a request outlasts a server that restarts (down for a second)', async (t) => {
  const before = await serve(t);
  const after = await makeTestApp(t);
  const { port } = before.ta.app.server.address() as AddressInfo;
  await before.ta.app.close();
  const c = client(t, { baseUrl: before.url });
  const started = performance.now();
  const restarted = sleep(1000).then(() => after.app.listen({ host: '127.0.0.1', port }));
  const answer = await c.health().then(
    (reply) => reply.status,
    (err: unknown) => String(err),
  );
  await restarted; // listening before the test ends, so that its teardown closes the server
  t.equal(answer, 'OK', 'answered by the restarted server');
  t.ok(performance.now() - started >= 1000, 'after the second it was down');
});

t.test('retries 5xx and connection failures with backoff, never 4xx', async (t) => {
  const keyring = 'version = "1.0"\n';
  const flaky = await fakeServer(t, (req, res, n) => {
    if (n <= 2) {
      res.writeHead(503, { 'content-type': 'application/toml' }).end('error = "warming up"\ncode = "unavailable"\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/toml' }).end(keyring);
  });
  t.same(await client(t, { baseUrl: flaky.url }).getHostKeys(), { version: '1.0' });
  t.equal(flaky.count(), 3, 'two 503s, then success');

  const down = await fakeServer(t, (req, res) => {
    res.writeHead(503, { 'content-type': 'application/toml' }).end('error = "down for maintenance"\n');
  });
  await t.rejects(client(t, { baseUrl: down.url, retries: 1 }).getHostKeys(), {
    code: 'unavailable',
    message: 'fetching the server keys: down for maintenance',
  });
  t.equal(down.count(), 2, 'retries: 1 means two attempts');

  const refusing = await fakeServer(t, (req, res) => {
    res.writeHead(400, { 'content-type': 'application/toml' }).end('error = "no"\ncode = "invalid_query"\n');
  });
  await t.rejects(client(t, { baseUrl: refusing.url }).query(), { code: 'invalid_query' });
  t.equal(refusing.count(), 1, 'a 4xx is never retried');

  const dropping = await fakeServer(t, (req, res, n) => {
    if (n === 1) {
      req.socket.destroy();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/toml' }).end(keyring);
  });
  t.same(await client(t, { baseUrl: dropping.url }).getHostKeys(), { version: '1.0' });
  t.equal(dropping.count(), 2, 'a dropped connection is retried');

  const uploads: Buffer[] = [];
  const uploadFlaky = await fakeServer(t, (req, res, n) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      uploads.push(Buffer.concat(chunks));
      if (n === 1) res.writeHead(502).end();
      else res.writeHead(200, { 'content-type': 'application/toml' }).end('message = "parcel created"\n');
    });
  });
  let opened = 0;
  const outcome = await client(t, { baseUrl: uploadFlaky.url }).createParcel('example.com/x/1.0.0', labelOf(bravo), () => {
    opened++;
    return Readable.from([bravo.data]);
  });
  t.equal(outcome, 'created');
  t.equal(opened, 2, 'the factory reopened the data for the retry');
  t.same(uploads.map((u) => u.length), [bravo.data.length, bravo.data.length], 'the whole body was sent each time');

  // A server killed (or a replica restarted) in the middle of an upload: the connection is reset
  // while the client is still sending. That is the transport failing, not the data's source.
  const big = randomBytes(16 << 20);
  const bigLabel = labelOf({ name: 'big.bin', data: big, mediaType: 'application/octet-stream' });
  const bigFile = join(t.testdir(), 'big.bin');
  await writeFile(bigFile, big);
  const received: number[] = [];
  const resetting = await fakeServer(t, (req, res, n) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      if (n === 1 && bytes >= 1 << 20) req.socket.resetAndDestroy();
    });
    req.on('end', () => {
      received.push(bytes);
      res.writeHead(200, { 'content-type': 'application/toml' }).end('message = "parcel created"\n');
    });
  });
  let reopened = 0;
  const afterReset = await client(t, { baseUrl: resetting.url }).createParcel('example.com/x/1.0.0', bigLabel, () => {
    reopened++;
    // As `bindle push` reads a parcel: a file stream piped through a byte counter.
    const counted = new PassThrough();
    pipeline(createReadStream(bigFile), counted, () => undefined);
    return counted;
  });
  t.equal(afterReset, 'created', 'an upload whose connection was reset mid-body is retried and succeeds');
  t.equal(reopened, 2, 'from the start of its data');
  t.same(received, [big.length], 'the retry sent the whole body');

  // The data's own source failing is the caller's problem: reported as such, never retried.
  let unreadableOpened = 0;
  await t.rejects(
    client(t, { baseUrl: resetting.url }).createParcel('example.com/x/1.0.0', bigLabel, () => {
      unreadableOpened++;
      const failing = new PassThrough();
      failing.write(big.subarray(0, 1 << 20), () => failing.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })));
      return failing;
    }),
    { code: 'internal', message: /reading the data to upload failed: EIO/ },
  );
  t.equal(unreadableOpened, 1, 'a source that fails to read is not retried');

  const silent = await fakeServer(t, () => {
    // Never answers.
  });
  await t.rejects(client(t, { baseUrl: silent.url, timeoutMs: 200, retries: 0 }).health(), {
    code: 'unavailable',
    message: /no reply within 200 ms/,
  });
});

t.test('downloaded parcels are re-hashed; nothing is left on a mismatch', async (t) => {
  const label = labelOf(alpha);
  const id = 'example.com/evil/1.0.0';
  const wrongBytes = Buffer.from('alpha parcez');
  let mode: 'wrong' | 'long' | 'chunked-long' | 'truncate-once' = 'wrong';
  let truncated = 0;
  const evil = await fakeServer(t, (req, res) => {
    if (mode === 'chunked-long') {
      // No Content-Length: the client learns the size only as the bytes arrive.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(alpha.data);
      res.end(Buffer.from('++'));
    } else if (mode === 'wrong') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': wrongBytes.length }).end(wrongBytes);
    } else if (mode === 'long') {
      const body = Buffer.concat([alpha.data, Buffer.from('++')]);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body);
    } else if (truncated++ === 0) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': alpha.data.length });
      res.write(alpha.data.subarray(0, 5), () => res.destroy());
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': alpha.data.length }).end(alpha.data);
    }
  });
  const c = client(t, { baseUrl: evil.url, retries: 1 });
  const dir = t.testdir();
  const dest = join(dir, 'cache', 'alpha.txt');
  // A small parcel is checked before any file is made, so the directory may not exist at all.
  const left = async (): Promise<string[]> => {
    try {
      return await readdir(join(dir, 'cache'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  };
  await t.rejects(c.downloadParcel(id, label, dest), { code: 'digest_mismatch', message: new RegExp(label.sha256) });
  t.same(await left(), [], 'no file and no temp file left');
  await t.rejects(collect(await c.getParcel(id, label)), { code: 'digest_mismatch' }, 'the stream errors at its end');
  t.equal(evil.count(), 2, 'a digest mismatch is not retried');

  mode = 'long';
  await t.rejects(c.getParcel(id, label), { code: 'size_mismatch' }, 'Content-Length disagrees with the label');
  await t.rejects(c.downloadParcel(id, label, dest), { code: 'size_mismatch' });
  t.same(await left(), []);

  mode = 'chunked-long';
  await t.rejects(c.downloadParcel(id, label, dest), { code: 'size_mismatch', message: /more than/ }, 'more bytes than the label says, without a Content-Length');
  await t.rejects(collect(await c.getParcel(id, label)), { code: 'size_mismatch' }, 'the stream fails on them too');
  t.same(await left(), []);

  mode = 'truncate-once';
  await c.downloadParcel(id, label, dest);
  t.same(await readFile(dest), alpha.data, 'a transfer cut short is retried');
  t.equal(truncated, 2);
});

t.test('a parcel too big to gather in memory is streamed to its file, checked the same way', async (t) => {
  const label = labelOf(bravo);
  let wrong = true;
  const server = await fakeServer(t, (req, res) => {
    const body = wrong ? Buffer.alloc(bravo.data.length, 0x63) : bravo.data;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  const c = client(t, { baseUrl: server.url });
  const dir = t.testdir();
  const dest = join(dir, 'cache', 'bravo.bin');
  const seen: number[] = [];
  await t.rejects(c.downloadParcel('example.com/big/1.0.0', label, dest), { code: 'digest_mismatch' });
  t.same(await readdir(join(dir, 'cache')), [], 'no file and no temp file left');
  wrong = false;
  await c.downloadParcel('example.com/big/1.0.0', label, dest, { onProgress: (bytes) => seen.push(bytes) });
  t.same(await readFile(dest), bravo.data);
  t.equal(seen.at(-1), bravo.data.length, 'progress reaches the whole size');
});

t.test('an error reply is read up to 64 KiB for its message: a bigger one is cut there, a body cut short leaves the status', async (t) => {
  const huge = `error = "${'x'.repeat(200_000)}"\n`;
  const { url } = await fakeServer(t, (req, res, n) => {
    if (n === 1) {
      res.writeHead(400, { 'content-type': 'application/toml' });
      res.end(huge);
    } else if (n === 2) {
      res.writeHead(400, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('half a message');
      setTimeout(() => res.destroy(), 50);
    } else {
      res.writeHead(400, { 'content-type': 'application/toml' });
      res.end('error = "a short reason"\ncode = "invalid_id"\n');
    }
  });
  const c = client(t, { baseUrl: url, retries: 0 });
  const cut = await c.getInvoice('a.example.com/x/1.0.0', { verify: false }).then(() => undefined, (err: unknown) => err);
  t.match(cut, { code: 'bad_request' }, 'a 200,000-character error document');
  const message = (cut as Error).message;
  t.ok(message.length < 70_000, `its message comes from the first 64 KiB only (${message.length} characters)`);
  t.match(message, /^fetching invoice a\.example\.com\/x\/1\.0\.0: /);
  const short = await c.getInvoice('a.example.com/x/1.0.0', { verify: false }).then(() => undefined, (err: unknown) => err);
  t.match(short, { code: 'bad_request', message: /HTTP 400 without an error message/ }, 'a body cut short: the status alone');
  const said = await c.getInvoice('a.example.com/x/1.0.0', { verify: false }).then(() => undefined, (err: unknown) => err);
  t.match(said, { code: 'invalid_id', message: /a short reason/ }, 'a whole error document: its code and text');
});
