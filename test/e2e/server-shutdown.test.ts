/**
 * Operating the real process: an upload in flight at SIGTERM finishes within the grace period
 * (or is discarded cleanly when the grace period runs out), and an over-limit upload gets a 413
 * and a closed connection instead of a hanging one.
 */
import t from 'tap';
import { request, type IncomingMessage } from 'node:http';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const keyring = vec('scaffolds', 'keys', 'keyring.toml');

async function createBindle(server: ServerProcess, name: string, data: Buffer): Promise<string> {
  const inv = signedInvoice(name, '1.0.0', [{ name: 'blob', data }]);
  const res = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(inv) });
  if (res.status !== 202) throw new Error(`create failed: ${res.status} ${await res.text()}`);
  return `${server.url}_i/${name}/1.0.0@${sha256(data)}`;
}

/** Starts a streamed upload; returns a function that sends the rest, and the reply. */
function slowUpload(url: string, data: Buffer, firstBytes: number): { finish: () => void; reply: Promise<{ status: number; body: string } | Error> } {
  const req = request(url, { method: 'POST', headers: { 'content-length': data.length } });
  const reply = new Promise<{ status: number; body: string } | Error>((resolve) => {
    req.on('response', (res: IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (err) => resolve(err));
  });
  req.write(data.subarray(0, firstBytes));
  return { finish: () => req.end(data.subarray(firstBytes)), reply };
}

t.test('an upload in flight at SIGTERM finishes', async (t) => {
  const server = await startServerProcess(t, { args: ['--keyring', keyring, '--shutdown-grace', '20s'] });
  const data = Buffer.alloc(2 * 1024 * 1024, 9);
  const url = await createBindle(server, 'example.com/inflight', data);
  const upload = slowUpload(url, data, 1024);
  await new Promise((r) => setTimeout(r, 300));
  const stopped = server.stop();
  await new Promise((r) => setTimeout(r, 300));
  upload.finish();
  const reply = await upload.reply;
  t.same(reply instanceof Error ? reply.message : reply.status, 200, 'the in-flight upload completes');
  t.equal(await stopped, 0, 'then the server exits cleanly');

  const again = await startServerProcess(t, { directory: server.directory, args: ['--keyring', keyring] });
  const res = await fetch(url.replace(server.url, again.url));
  t.equal(res.status, 200);
  t.ok(Buffer.from(await res.arrayBuffer()).equals(data), 'and the parcel is intact after restart');
});

t.test('an upload still running when the grace period ends is discarded cleanly', async (t) => {
  const server = await startServerProcess(t, { args: ['--keyring', keyring, '--shutdown-grace', '500ms'] });
  const data = Buffer.alloc(1024 * 1024, 5);
  const url = await createBindle(server, 'example.com/abandoned', data);
  const upload = slowUpload(url, data, 4096);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await server.stop(), 0, 'the server exits after the grace period');
  const reply = await upload.reply;
  t.ok(reply instanceof Error || reply.status >= 500, 'the unfinished upload did not succeed');

  const again = await startServerProcess(t, { directory: server.directory, args: ['--keyring', keyring] });
  const target = url.replace(server.url, again.url);
  t.equal((await fetch(target, { method: 'HEAD' })).status, 404, 'no partial parcel is visible');
  const retry = await fetch(target, { method: 'POST', body: data });
  t.equal(retry.status, 200, 'a retry succeeds');
});

t.test('an over-limit parcel is refused with 413 and the connection is closed', async (t) => {
  const server = await startServerProcess(t, { args: ['--keyring', keyring, '--max-parcel-size', '64KiB'] });
  const data = Buffer.alloc(8 * 1024 * 1024, 1);
  const url = await createBindle(server, 'example.com/toobig', data);
  const upload = slowUpload(url, data, 64 * 1024);
  const reply = await upload.reply;
  if (reply instanceof Error) throw reply;
  t.equal(reply.status, 413);
  t.match(reply.body, /over this server's limit/);
});
