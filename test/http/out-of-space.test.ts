/**
 * A full disk (issue 11 item 8): on a real 2 MiB tmpfs, an upload, a create and a yank that run
 * out of space answer 507 `insufficient_storage` saying so, and leave nothing partial behind.
 * Needs permission to mount a tmpfs (root); skipped with the reason otherwise, and on the
 * postgres+s3 backend pair, whose storage is not on the local disk.
 */
import { appendFileSync, readdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice } from '../helpers/bindles.js';
import { recordingLogger } from '../helpers/log-records.js';
import { makeTestApp } from '../helpers/test-app.js';
import { localTmpfs, removeTmpfs } from '../helpers/tmpfs.js';

const TOML_HEADERS = { 'content-type': 'application/toml' };

/** Appends to `path` until the file system is full (bounded: 2 MiB in 4 KiB pages is 512 writes). */
function fillDisk(path: string): void {
  const page = Buffer.alloc(4096, 1);
  for (let i = 0; i < 4096; i++) {
    try {
      appendFileSync(path, page);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
      throw err;
    }
  }
  throw new Error('the tmpfs never filled up');
}

/** Only the sqlite+file pair keeps its storage on the local disk (test-backends.ts). */
const { dir: mounted, skip } = localTmpfs('2m', 'keep nothing on the local disk');

t.test('running out of space answers 507 insufficient_storage and stores nothing partial', { skip }, async (t) => {
  if (mounted === undefined) return;
  const dir = mounted;
  t.teardown(() => removeTmpfs(dir));
  const { logger, records } = recordingLogger();
  const ta = await makeTestApp(t, { dir, logger });
  const expectFull = (res: { statusCode: number; body: string }, what: string): void => {
    t.equal(res.statusCode, 507, `${what}: ${res.body}`);
    const body = TOML.parse(res.body) as unknown as ErrorReply;
    t.equal(body.code, 'insufficient_storage', what);
    t.match(body.error, /out of storage space/, `${what}: the message says the server is out of space`);
  };

  const big = randomBytes(3 * 1024 * 1024);
  const small = Buffer.from('small parcel');
  const invoice = signedInvoice('example.com/full', '1.0.0', [{ name: 'big.bin', data: big }, { name: 'small.txt', data: small }]);
  let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(invoice) });
  t.equal(res.statusCode, 202, res.body);
  const parcelUrl = (sha: string): string => `/v1/_i/example.com/full/1.0.0@${sha}`;
  const bigSha = invoice.parcel?.[0]?.label.sha256 ?? '';

  res = await ta.app.inject({ method: 'POST', url: parcelUrl(bigSha), payload: big });
  expectFull(res, 'upload larger than the disk');
  t.same(readdirSync(join(dir, 'parcels', '.tmp')), [], 'no temp file is left');
  res = await ta.app.inject({ method: 'GET', url: parcelUrl(bigSha) });
  t.equal(res.statusCode, 404, 'the parcel is not there');
  res = await ta.app.inject({ method: 'POST', url: `/v2/example.com/full/blobs/uploads/?digest=sha256:${bigSha}`, headers: { 'content-type': 'application/octet-stream' }, payload: big });
  t.equal(res.statusCode, 507, `an OCI blob upload larger than the disk: ${res.body}`);
  t.equal((JSON.parse(res.body) as { errors: { detail: { code: string } }[] }).errors[0]?.detail.code, 'insufficient_storage', 'in the OCI error envelope');
  // The server's own failure, on either API: logged at error, never as a client's failed request.
  t.equal(records.filter((r) => r.msg === 'out of storage space' && r.level === 50).length, 2, 'both uploads are logged at error');
  t.same(records.filter((r) => r.code === 'insufficient_storage').map((r) => r.msg), [], 'and not at info');

  const filler = join(dir, 'filler');
  fillDisk(filler);
  const other = signedInvoice('example.com/full', '2.0.0', [{ name: 'small.txt', data: small }]);
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(other) });
  expectFull(res, 'create on a full disk');
  res = await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/full/1.0.0' });
  expectFull(res, 'yank on a full disk');

  rmSync(filler);
  res = await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/full/2.0.0' });
  t.equal(res.statusCode, 404, 'the failed create left no invoice');
  res = await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/full/1.0.0' });
  t.equal(res.statusCode, 200, 'the failed yank left the invoice as it was');
  res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(other) });
  t.equal(res.statusCode, 202, `with space again the same create works: ${res.body}`);
  res = await ta.app.inject({ method: 'POST', url: parcelUrl(invoice.parcel?.[1]?.label.sha256 ?? ''), payload: small });
  t.equal(res.statusCode, 200, `and so does an upload: ${res.body}`);
});
