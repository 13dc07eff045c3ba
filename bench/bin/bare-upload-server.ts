#!/usr/bin/env node
/**
 * The small-upload comparison server of the benchmarks: a bare node:http server on 127.0.0.1
 * (free port, printed as `{"port":N}`) that stores every request body the plainest durable
 * way Node offers — the body gathered in memory while hashed with sha256, then one new file
 * per request (`open`, one `write`, one `fsync`, `close`; no directory sync, no verification,
 * no rename) — and answers the digest. `bare-upload-server <dir>`. Stops on SIGTERM/SIGINT.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { serveBare } from '../lib/bare-listen.js';

const [dir] = process.argv.slice(2);
if (dir === undefined) {
  process.stderr.write('usage: bare-upload-server <dir>\n');
  process.exit(2);
}

let uploads = 0;

async function store(target: string, body: Buffer): Promise<void> {
  const handle = await open(target, 'wx', 0o444);
  try {
    for (let offset = 0; offset < body.length; ) offset += (await handle.write(body, offset)).bytesWritten;
    await handle.sync();
  } finally {
    await handle.close();
  }
}

serveBare((req, res) => {
  const target = join(dir, `upload-${uploads++}`);
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    chunks.push(chunk);
  });
  req.on('end', () => {
    store(target, Buffer.concat(chunks)).then(
      () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(hash.digest('hex'));
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      },
    );
  });
});
