#!/usr/bin/env node
/**
 * The comparison server of the benchmarks: a bare node:http server on 127.0.0.1 (free port,
 * printed as `{"port":N}`) that answers every request with a file streamed from disk in 1 MiB
 * chunks, the fastest read size for big files here (`bare-http-server file <path>`), or with
 * fixed bytes read once at start, the fastest way to serve a small file
 * (`bare-http-server bytes <path> <content-type>`), or that stores every request body as fast as
 * it knows how: hashed with sha256 while written to a new file in `<dir>` (1 MiB batches,
 * background fdatasyncs, see `store`), fsynced, answering the digest, and kept there, as the
 * server keeps its parcels (`bare-http-server sink <dir>`), or that only hashes every
 * request body and answers the digest, touching no disk (`bare-http-server receive -`: what an
 * HTTP upload over loopback can reach here at all). Stops on SIGTERM/SIGINT.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { serveBare } from '../lib/bare-listen.js';

/** Read size of `file` mode: 1 MiB reads move big files fastest (64 KiB, the default, is slower). */
const READ_CHUNK = 1 << 20;

/** Bytes the sink gathers into one write. */
const WRITE_BATCH = 1 << 20;
/** Batches the sink lets wait for the disk while the next one fills. */
const MAX_WRITES_IN_FLIGHT = 2;
/** Bytes the sink writes between background fdatasyncs, so that its last fsync waits for the tail only. */
const SYNC_EVERY = 8 << 20;

/** Writes all of `buffers` at `position` of `file` (writev, then the rest of a short write). */
async function writeAll(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  const total = buffers.reduce((sum, b) => sum + b.length, 0);
  let done = (await file.writev(buffers, position)).bytesWritten;
  if (done === total) return;
  const all = Buffer.concat(buffers);
  while (done < total) done += (await file.write(all, done, total - done, position + done)).bytesWritten;
}

/**
 * Stores a request body into the new file `target` and resolves with its sha256 once it is
 * durable: hashed as it arrives, written in 1 MiB batches with up to two of them in flight, and
 * fdatasynced in the background every 8 MiB, so that the closing fsync waits only for the last
 * few MiB (the technique of the server's own file parcel store).
 */
async function store(req: http.IncomingMessage, target: string): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(target, 'wx', 0o600);
  const inFlight: Array<Promise<void>> = [];
  let syncing: Promise<void> | undefined;
  try {
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let position = 0;
    let written = 0;
    let synced = 0;
    let syncError: Error | undefined;
    const flush = (): void => {
      const [buffers, at, bytes] = [batch, position, batchBytes];
      [batch, batchBytes, position] = [[], 0, position + bytes];
      inFlight.push(
        writeAll(file, buffers, at).then(() => {
          written += bytes;
          if (syncing !== undefined || written - synced < SYNC_EVERY) return;
          const mark = written;
          syncing = file.datasync().then(
            () => {
              synced = mark;
              syncing = undefined;
            },
            (err: unknown) => {
              syncError = err instanceof Error ? err : new Error(String(err));
              syncing = undefined;
            },
          );
        }),
      );
    };
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes < WRITE_BATCH) continue;
      flush();
      if (inFlight.length >= MAX_WRITES_IN_FLIGHT) await inFlight.shift();
    }
    if (batchBytes > 0) flush();
    await Promise.all(inFlight);
    await syncing;
    if (syncError !== undefined) throw syncError;
    await file.sync();
  } finally {
    // A failed write or a broken request leaves the others to settle before the descriptor goes.
    await Promise.allSettled(inFlight);
    await syncing;
    await file.close();
  }
  return hash.digest('hex');
}

function usage(): never {
  process.stderr.write('usage: bare-http-server file <path> | bytes <path> <content-type> | sink <dir> | receive -\n');
  process.exit(2);
}

const [mode, path, contentType] = process.argv.slice(2);
if (path === undefined) usage();

let handler: http.RequestListener;
if (mode === 'file') {
  handler = (req, res) => {
    const size = statSync(path).size;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    if (req.method === 'HEAD') res.end();
    else createReadStream(path, { highWaterMark: READ_CHUNK }).pipe(res);
  };
} else if (mode === 'sink') {
  let uploads = 0;
  handler = (req, res) => {
    const target = join(path, `upload-${uploads++}`);
    store(req, target).then(
      (digest) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(digest);
      },
      (err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      },
    );
  };
} else if (mode === 'receive') {
  handler = (req, res) => {
    const hash = createHash('sha256');
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(hash.digest('hex'));
    });
  };
} else if (mode === 'bytes' && contentType !== undefined) {
  const body = readFileSync(path);
  handler = (req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
} else {
  usage();
}

serveBare(handler);
