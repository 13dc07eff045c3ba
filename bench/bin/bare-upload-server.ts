#!/usr/bin/env node
/**
 * The small-upload comparison servers of the benchmarks: bare node:http servers on 127.0.0.1
 * (free port, printed as `{"port":N}`), each request body gathered in memory while hashed with
 * sha256, the digest answered. Stops on SIGTERM/SIGINT.
 * `bare-upload-server <dir>`: stores every body the plainest durable way Node offers — one new
 * file per request (`open`, one `write`, one `fsync`, `close`; no directory sync, no
 * verification, no rename).
 * `bare-upload-server <dir> durable`: stores every body to `<dir>/<sha256>.dat` with the
 * guarantees of the parcel store (server/storage/file-parcel-store.ts), at the least cost Node
 * allows: the body is PUT to `/<sha256>` and verified; nothing is visible before it is durable,
 * and the answer comes only once the link is. The temp file is created in the thread pool as the
 * body arrives; the body is written in one O_DSYNC write (its data's sync); the temp file is
 * linked to `<sha256>.dat` without clobbering (synchronously, like the unlink of the temp name);
 * then `<dir>` is fsynced for the new entry (one fsync shared by the uploads that wait for it,
 * group commit). The file calls are core/fs-atomic's thin wrappers over node:fs, the ones the
 * parcel store uses (openDescriptor, SYNCED_CREATE_FLAGS, DirectorySync's group commit).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, linkSync, mkdirSync, rmSync, unlinkSync, write } from 'node:fs';
import { open } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DirectorySync, fsyncDescriptor, openDescriptor, SYNCED_CREATE_FLAGS } from '../../core/fs-atomic.js';
import { serveBare } from '../lib/bare-listen.js';

function usage(): never {
  process.stderr.write('usage: bare-upload-server <dir> [durable]\n');
  process.exit(2);
}

const [dirArg, mode = 'plain'] = process.argv.slice(2);
if (dirArg === undefined || (mode !== 'plain' && mode !== 'durable')) usage();
const dir: string = dirArg;

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

/**
 * Gathers the request's body while hashing it, then answers its sha256 once `keep(digest, body)`
 * has resolved (500 with the error if it rejects).
 */
function receive(req: http.IncomingMessage, res: http.ServerResponse, keep: (digest: string, body: Buffer) => Promise<void>): void {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    chunks.push(chunk);
  });
  req.on('end', () => {
    const digest = hash.digest('hex');
    keep(digest, Buffer.concat(chunks)).then(
      () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(digest);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      },
    );
  });
}

/** The plain server: one file and one fsync per body. */
const plain: http.RequestListener = (req, res) => {
  const target = join(dir, `upload-${uploads++}`);
  receive(req, res, (_, body) => store(target, body));
};

const writeAsync = promisify(write);
/** O_DSYNC where the platform has it (the write is the data's sync); else the file is fsynced after its write. */
const SYNCED_CREATE = SYNCED_CREATE_FLAGS ?? constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
const tempDir = join(dir, '.tmp');
/** Group commit of `<dir>`: callers while one fsync runs share the next one. */
const rootSync = new DirectorySync(dir);

/**
 * Stores `data` (its digest `digest`, named `sha256` by the client) as `<dir>/<sha256>.dat`, the
 * temp file `temp` having been created (`opened`) meanwhile.
 */
async function storeDurably(sha256: string, digest: string, data: Buffer, temp: string, opened: Promise<number>): Promise<void> {
  const fd = await opened;
  try {
    if (digest !== sha256) throw new Error(`digest ${digest} is not ${sha256}`);
    for (let offset = 0; offset < data.length; ) offset += (await writeAsync(fd, data, offset)).bytesWritten;
    if (SYNCED_CREATE_FLAGS === undefined) await fsyncDescriptor(fd);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, join(dir, `${sha256}.dat`));
  } finally {
    unlinkSync(temp);
  }
  await rootSync.sync();
}

/** The durable server: the parcel store's guarantees, bare. */
function durable(): http.RequestListener {
  mkdirSync(tempDir, { recursive: true });
  return (req, res) => {
    const sha256 = (req.url ?? '/').slice(1);
    const temp = join(tempDir, `t-${uploads++}`);
    const opened = openDescriptor(temp, SYNCED_CREATE, 0o444);
    // Observed now: the body may still be arriving when it fails (storeDurably reports it).
    opened.catch(() => undefined);
    receive(req, res, (digest, body) => storeDurably(sha256, digest, body, temp, opened));
  };
}

serveBare(mode === 'durable' ? durable() : plain);
