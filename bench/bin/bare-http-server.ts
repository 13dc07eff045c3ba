#!/usr/bin/env node
/**
 * The comparison server of the benchmarks: a bare node:http server on 127.0.0.1 (free port,
 * printed as `{"port":N}`) that answers every request with a file streamed from disk in 1 MiB
 * chunks, the fastest read size for big files here (`bare-http-server file <path>`), or with
 * fixed bytes read once at start, the fastest way to serve a small file
 * (`bare-http-server bytes <path> <content-type>`), or that stores every request body the
 * plain way: hashed with sha256 while written to a new file in `<dir>` (1 MiB writes), fsynced,
 * then deleted, answering the digest (`bare-http-server sink <dir>`), or that only hashes every
 * request body and answers the digest, touching no disk (`bare-http-server receive -`: what an
 * HTTP upload over loopback can reach here at all). Stops on SIGTERM/SIGINT.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, rmSync, statSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { serveBare } from '../lib/bare-listen.js';

/** Read size of `file` mode: 1 MiB reads move big files fastest (64 KiB, the default, is slower). */
const READ_CHUNK = 1 << 20;

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
    const hash = createHash('sha256');
    const file = createWriteStream(target, { flags: 'wx', highWaterMark: 1 << 20, flush: true });
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.pipe(file);
    file.on('close', () => {
      rmSync(target, { force: true });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(hash.digest('hex'));
    });
    file.on('error', (err) => {
      res.writeHead(500);
      res.end(String(err));
    });
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
