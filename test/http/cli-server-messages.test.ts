/**
 * What the CLI says when the server or the setup is wrong, run in-process against real local
 * servers: a URL without the API path, a URL answering with something other than the Bindle API
 * (the OCI API's error envelope, a web server's HTML page), https to a plain-HTTP server, a full
 * disk on the server (HTTP 507 insufficient_storage), signing with no secret-key file; and
 * `generate-label`'s media types from the media-type database.
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

t.test('a URL answering with a non-Bindle reply: one line with the status, the useful part and what to fix', async (t) => {
  const dir = t.testdir();
  const { url } = await listenTestApp(t);
  const origin = url.slice(0, -'/v1/'.length);
  const bindle = inProcessCli(join(dir, 'home'));
  // The server's OCI API answers in its error envelope.
  const oci = await bindle(['-s', `${origin}/v2/`, '--retries', '0', 'search']);
  t.equal(oci.code, 1);
  t.equal(oci.stderr.trimEnd().split('\n').length, 1, 'one line', { stderr: oci.stderr });
  t.match(oci.stderr, `the server at ${origin}/v2/_q answered HTTP 404 with a non-Bindle reply: OCI error NAME_UNKNOWN: no OCI endpoint at /v2/_q`);
  t.match(oci.stderr, `(is --server (BINDLE_URL) the Bindle API root, e.g. ${origin}/v1/?)`);
  t.notMatch(oci.stderr, /[{}"]/, 'not the raw JSON body');
  const get = await bindle(['-s', `${origin}/v2/`, '--retries', '0', 'get', 'example.com/app/1.0.0']);
  t.match(get.stderr, /could not get example\.com\/app\/1\.0\.0: fetching invoice example\.com\/app\/1\.0\.0: the server at \S+ answered HTTP 404 with a non-Bindle reply: OCI error NAME_UNKNOWN/);

  // A web server's page, and some other JSON API.
  const web = await serveLocally(t, (req, res) => {
    if (req.url?.startsWith('/api/') === true) {
      res.writeHead(405, { 'content-type': 'application/json' });
      res.end('{"message":"Method Not Allowed","documentation_url":"https://example.com/docs"}');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n');
  });
  const html = await bindle(['-s', `${web}/`, '--retries', '0', 'search']);
  t.equal(html.code, 1);
  t.equal(html.stderr.trimEnd().split('\n').length, 1, 'one line', { stderr: html.stderr });
  t.match(html.stderr, `answered HTTP 404 with a non-Bindle reply: an HTML page titled "404 Not Found" (is --server (BINDLE_URL) the Bindle API root, e.g. ${web}/v1/?)`);
  t.notMatch(html.stderr, /<center>/, 'not the page itself');
  const search = await bindle(['-s', `${web}/api/`, '--retries', '0', 'search']);
  t.match(search.stderr, `answered HTTP 405 with a non-Bindle reply: a JSON document (is --server (BINDLE_URL) the Bindle API root, e.g. ${web}/api/v1/?)`);
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
