/**
 * What the CLI says when the server or the setup is wrong, run in-process against real local
 * servers: a URL without the API path, https to a plain-HTTP server, a full disk on the server
 * (HTTP 507 insufficient_storage), signing with no secret-key file; and `generate-label`'s media
 * types from the media-type database.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { serveLocally } from '../helpers/local-server.js';
import { listenTestApp } from '../helpers/test-app.js';

t.test('a server URL without /v1/ says what to fix', async (t) => {
  const dir = t.testdir();
  const { url } = await listenTestApp(t);
  const origin = url.slice(0, -'v1/'.length);
  const bindle = inProcessCli(join(dir, 'home'));
  const r = await bindle(['-s', origin, '--retries', '0', 'search']);
  t.equal(r.code, 1);
  t.match(r.stderr, `is not the API path: set --server (BINDLE_URL) to ${origin}v1/`);
  t.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line');
  const ok = await bindle(['-s', url, 'search']);
  t.equal(ok.code, 0, 'with /v1/ it works', { stderr: ok.stderr });
});

t.test('https to a plain-HTTP server: the server does not speak TLS', async (t) => {
  const dir = t.testdir();
  const origin = await serveLocally(t, (_req, res) => res.end('plain'));
  const bindle = inProcessCli(join(dir, 'home'));
  const r = await bindle(['-s', `${origin.replace('http:', 'https:')}/v1/`, '--retries', '0', 'search']);
  t.equal(r.code, 1);
  t.match(r.stderr, /the server does not speak TLS \(use http:\/\/ instead of https:\/\/\)/);
  t.notMatch(r.stderr, /SSL routines|openssl/i, 'no OpenSSL text');
});

t.test('a full disk on the server: the server is out of storage space', async (t) => {
  const dir = t.testdir();
  const origin = await serveLocally(t, (_req, res) => {
    res.writeHead(507, { 'content-type': 'application/toml' });
    res.end('error = "no space left on the parcel store"\ncode = "insufficient_storage"\n');
  });
  const file = join(dir, 'data.txt');
  writeFileSync(file, 'some bytes\n');
  const bindle = inProcessCli(join(dir, 'home'));
  const r = await bindle(['-s', `${origin}/v1/`, '--retries', '0', 'push-file', 'example.com/x/1.0.0', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, /\(the server is out of storage space/);
  // A reference server sends no code: the status alone says it.
  const bare = await serveLocally(t, (_req, res) => {
    res.writeHead(507);
    res.end();
  });
  const s = await bindle(['-s', `${bare}/v1/`, '--retries', '0', 'search']);
  t.match(s.stderr, /the server is out of storage space/);
});

t.test('sign-invoice with no secret-key file suggests bindle keys create', async (t) => {
  const dir = t.testdir({
    'invoice.toml': 'bindleVersion = "1.0.0"\n\n[bindle]\nname = "example.com/x"\nversion = "1.0.0"\n',
  });
  const bindle = inProcessCli(join(dir, 'home'));
  const r = await bindle(['sign-invoice', join(dir, 'invoice.toml')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /no secret-key file at .*secret_keys\.toml: create a key with 'bindle keys create/);
});

t.test('generate-label takes media types from the media-type database', async (t) => {
  const dir = t.testdir({ 'cover.avif': 'x', 'book.epub': 'y', 'README': 'z' });
  const bindle = inProcessCli(join(dir, 'home'));
  const expected: Array<[string, string]> = [['cover.avif', 'image/avif'], ['book.epub', 'application/epub+zip'], ['README', 'application/octet-stream']];
  for (const [file, type] of expected) {
    const r = await bindle(['generate-label', '--output', 'json', join(dir, file)]);
    t.equal(r.code, 0, file, { stderr: r.stderr });
    t.equal((JSON.parse(r.stdout) as { mediaType: string }).mediaType, type, `${file} is ${type}`);
  }
});
