/**
 * How the CLI fails, end to end: a (deliberately broken) `node:http` server that serves a
 * correctly signed invoice but wrong parcel bytes makes `get` and `get-parcel` fail with a
 * digest error and leave no file behind; a server's error message reaches the one-line error;
 * an unreachable or malformed server URL is one clear line and a non-zero exit.
 */
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice, sha256 } from '../helpers/bindles.js';
import { cliRunner, exits, trustSetup } from '../helpers/cli-runner.js';
import { serveLocally } from '../helpers/local-server.js';

const GOOD = Buffer.from('the real parcel bytes\n');
const BAD = Buffer.from('the fake parcel bytes\n');
const SHORT = Buffer.from('short');

/** Every file (not directory) under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());
}

async function listen(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  return `${await serveLocally(t, handler)}/v1/`;
}

t.test('a server sending wrong parcel bytes: get fails with a digest error and leaves nothing behind', async (t) => {
  const dir = t.testdir();
  const trust = trustSetup(join(dir, 'trust'));
  const invoice = signedInvoice('example.com/tampered', '1.0.0', [
    { name: 'same-size.txt', data: GOOD },
    { name: 'wrong-size.txt', data: Buffer.from('seven b') },
  ]);
  const text = renderInvoice(invoice);
  const url = await listen(t, (req, res) => {
    const path = req.url ?? '';
    if (path.startsWith('/v1/_i/example.com/tampered/1.0.0@')) {
      const sha = path.slice(path.indexOf('@') + 1);
      const body = sha === sha256(GOOD) ? BAD : SHORT;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
      res.end(body);
    } else if (path.startsWith('/v1/_i/example.com/tampered/1.0.0')) {
      res.writeHead(200, { 'content-type': 'application/toml' });
      res.end(text);
    } else {
      res.writeHead(404, { 'content-type': 'application/toml' });
      res.end('error = "no such thing"\n');
    }
  });
  const bindle = cliRunner(join(dir, 'home'));
  // The fake server adds no host signature: trust the creator (the reference key) alone.
  const global = ['-s', url, '-r', trust.clientKeyringPath, '--strategy', 'CreativeIntegrity', '--retries', '0'];
  const cache = join(dir, 'cache');

  const get = await bindle([...global, '-d', cache, 'get', 'example.com/tampered/1.0.0']);
  exits(t, get, 1, 'get fails');
  t.match(get.stderr, /^bindle: could not get example\.com\/tampered\/1\.0\.0: .*\(parcel digest check failed: .*nothing was kept\)\n$/, 'a digest error');
  t.equal(get.stderr.trimEnd().split('\n').length, 1, 'one line');
  t.same(filesUnder(cache), [], 'no file left in the cache');

  const out = join(dir, 'parcel.dat');
  const parcel = await bindle([...global, '-d', cache, 'get-parcel', '-o', out, 'example.com/tampered/1.0.0', sha256(GOOD)]);
  exits(t, parcel, 1, 'get-parcel fails');
  t.match(parcel.stderr, /^bindle: could not get parcel .*the data has sha256 [0-9a-f]{64}, but its label says .*\(parcel digest check failed: .*\)\n$/, 'a digest error');
  t.notOk(existsSync(out), 'no output file');
  t.same(filesUnder(dir).filter((f) => f.includes('parcel')), [], 'no temp file either');

  const size = await bindle([...global, '-d', cache, 'get-parcel', '-o', out, 'example.com/tampered/1.0.0', sha256(Buffer.from('seven b'))]);
  exits(t, size, 1, 'a wrong size fails too');
  t.match(size.stderr, /bytes.*\(parcel digest check failed/, 'a size error');
  t.notOk(existsSync(out), 'no output file');
});

t.test("the server's error message reaches the one-line error", async (t) => {
  const dir = t.testdir();
  const url = await listen(t, (_req, res) => {
    res.writeHead(400, { 'content-type': 'application/toml' });
    res.end('error = "the index is on fire"\ncode = "invalid_query"\n');
  });
  const bindle = cliRunner(join(dir, 'home'));
  const r = await bindle(['-s', url, 'search', '-q', 'x']);
  exits(t, r, 1, 'search fails');
  t.match(r.stderr, /^bindle: search failed: .*the index is on fire\n$/);
});

t.test('an unreachable server and a malformed URL give one clear line', async (t) => {
  const dir = t.testdir();
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const bindle = cliRunner(join(dir, 'home'));

  const refused = await bindle(['-s', `http://127.0.0.1:${port}/v1/`, '--retries', '0', 'get', 'example.com/x/1.0.0']);
  exits(t, refused, 1, 'an unreachable server fails');
  t.match(refused.stderr, new RegExp(`^bindle: could not get example\\.com/x/1\\.0\\.0: .*cannot reach http://127\\.0\\.0\\.1:${port}/v1/.*\\n$`));

  const malformed = await bindle(['get', 'example.com/x/1.0.0'], { env: { BINDLE_URL: 'not a url' } });
  exits(t, malformed, 2, 'a malformed URL is a usage error');
  t.match(malformed.stderr, /^bindle: invalid --server \(BINDLE_URL\): "not a url" is not a URL.*\n$/);

  const scheme = await bindle(['-s', 'ftp://example.com/v1/', 'search']);
  exits(t, scheme, 2, 'a non-HTTP URL is a usage error');
  t.match(scheme.stderr, /must be an http:\/\/ or https:\/\/ URL/);

  const badId = await bindle(['get', 'no-version']);
  exits(t, badId, 2, 'a malformed id is a usage error');
  t.match(badId.stderr, /^bindle: invalid bindle id "no-version": .*\n$/);
  t.notMatch(badId.stderr, /invalid bindle id.*invalid bindle id/, 'the id is named once');
});
