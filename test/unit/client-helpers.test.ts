/**
 * The client's pure helpers: error bodies and status mapping, backoff delays, bounded
 * parallelism, the parcel digest stream and file checks (a small file read in two thread-pool
 * calls), and what makes two invoices the same release.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, pipeline as pipelineCallback, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Invoice } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import {
  backoffDelay, BACKOFF_CAP_MS, checkFile, codeForStatus, DEFAULT_RETRIES, digestFile, formatOfContentType, isTransportFailure,
  ParcelDigestStream, READ_CHUNK_BYTES, readErrorBody, releaseDifferences, replyError,
} from '../../client/lib/index.js';
import { readCheckedFile } from '../../client/lib/parcel-digest.js';
import { loadScaffold, sha256, signedInvoice } from '../helpers/bindles.js';
import { withPoolCalls } from '../helpers/pool-calls.js';

t.test('error bodies and statuses', async (t) => {
  t.same(readErrorBody('error = "nope"\ncode = "invalid_query"\n', 'application/toml'), { message: 'nope', code: 'invalid_query' });
  t.same(readErrorBody('{"error":"nope","code":"yanked"}', 'application/json; charset=utf-8'), { message: 'nope', code: 'yanked' });
  t.same(readErrorBody('error = "reference"\n', undefined), { message: 'reference' }, 'no code: the reference server');
  t.same(readErrorBody('error = "x"\ncode = "made_up"\n', 'application/toml'), { message: 'x' }, 'unknown codes are dropped');
  t.same(readErrorBody('<html>\n<b>Bad   Gateway</b></html>', 'text/html'), { message: '<html> <b>Bad Gateway</b></html>' });
  t.same(readErrorBody('', 'text/plain'), {});
  t.equal(formatOfContentType('application/json+bindle'), 'json');
  t.equal(formatOfContentType('text/json'), 'json');
  t.equal(formatOfContentType('application/toml'), 'toml');
  t.equal(formatOfContentType(undefined), 'toml');
  const statuses: Array<[number, string]> = [
    [400, 'bad_request'], [401, 'unauthenticated'], [403, 'forbidden'], [404, 'not_found'], [409, 'already_exists'],
    [413, 'payload_too_large'], [410, 'deleted'], [422, 'yanked_create'], [418, 'bad_request'], [500, 'internal'], [502, 'unavailable'],
    [503, 'unavailable'], [504, 'unavailable'], [501, 'not_implemented'], [507, 'insufficient_storage'], [508, 'internal'],
  ];
  for (const [status, code] of statuses) t.equal(codeForStatus(status), code, String(status));
  const err = replyError('fetching invoice a/1.0.0', 404, '', undefined);
  t.equal(err.code, 'not_found');
  t.equal(err.message, 'fetching invoice a/1.0.0: the server answered HTTP 404 without an error message');
  t.ok(isTransportFailure(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })));
  t.ok(isTransportFailure(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })])));
  t.notOk(isTransportFailure(new Error('plain')));
  t.notOk(isTransportFailure(Object.assign(new Error('no file'), { code: 'ENOENT' })));
});

t.test('backoff delays', async (t) => {
  t.equal(backoffDelay(0, undefined, () => 0), 50);
  t.equal(backoffDelay(0, undefined, () => 1), 100);
  t.equal(backoffDelay(3, undefined, () => 1), 800);
  t.equal(backoffDelay(30, undefined, () => 1), BACKOFF_CAP_MS, 'capped');
  t.equal(backoffDelay(0, '2', () => 0), 2000, 'Retry-After in seconds');
  t.equal(backoffDelay(0, '3600', () => 0), 50, 'an unreasonable Retry-After is ignored');
  t.equal(backoffDelay(0, 'Wed, 21 Oct 2015 07:28:00 GMT', () => 0), 50);
});

t.test('the default retries wait at least 1.5 s in all (past a server\'s restart) and at most a few seconds', async (t) => {
  const waited = (random: () => number): number =>
    Array.from({ length: DEFAULT_RETRIES }, (_, attempt) => backoffDelay(attempt, undefined, random)).reduce((a, b) => a + b, 0);
  t.ok(waited(() => 0) >= 1500, `at least ${waited(() => 0)} ms`);
  t.ok(waited(() => 1) <= 4000, `at most ${waited(() => 1)} ms`);
});

t.test('ParcelDigestStream', async (t) => {
  const data = Buffer.from('some parcel bytes');
  const label = { sha256: sha256(data), mediaType: 'text/plain', name: 'p.txt', size: data.length };
  const run = async (chunks: Buffer[]): Promise<Buffer> => {
    const out: Buffer[] = [];
    await pipeline(Readable.from(chunks), new ParcelDigestStream(label, 'test parcel'), async (source: AsyncIterable<Buffer>) => {
      for await (const c of source) out.push(c);
    });
    return Buffer.concat(out);
  };
  t.same(await run([data.subarray(0, 4), data.subarray(4)]), data);
  await t.rejects(run([Buffer.from('some parcel bytez')]), { code: 'digest_mismatch', message: /^test parcel: the data has sha256 / });
  await t.rejects(run([data.subarray(0, 5)]), { code: 'size_mismatch', message: /got 5 bytes/ });
  await t.rejects(run([data, Buffer.from('more')]), { code: 'size_mismatch', message: /more than 17 bytes/ });

  // As the client wires a download: the network body piped into the checking stream.
  const body = new PassThrough();
  const mapped = new ParcelDigestStream(label, 'test parcel', (err) => new BindleError('unavailable', `mapped: ${err.message}`));
  pipelineCallback(body, mapped, () => undefined);
  body.destroy(new Error('socket closed'));
  await new Promise((resolve) => setImmediate(resolve));
  await t.rejects(mapped.toArray(), { code: 'unavailable', message: 'mapped: socket closed' }, 'a reader that starts after the failure gets the mapped error');
});

t.test('digestFile and checkFile read files in chunks and check size, then sha256', async (t) => {
  const dir = t.testdir();
  // Sizes around the read chunk: empty, small, exactly one chunk, and several chunks with a partial last one.
  for (const size of [0, 5, READ_CHUNK_BYTES, 2 * READ_CHUNK_BYTES + 12_345]) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 11)) & 0xff;
    const path = join(dir, `f${size}`);
    writeFileSync(path, data);
    const label = { sha256: sha256(data), mediaType: 'application/octet-stream', name: `f${size}`, size };
    t.same(await digestFile(path), { size, sha256: sha256(data) }, `digestFile, ${size} bytes`);
    await checkFile(path, label, 'the file');
    if (size === 0) continue;
    const flipped = Buffer.from(data);
    flipped[size - 1] = (flipped[size - 1] ?? 0) ^ 1;
    writeFileSync(path, flipped);
    await t.rejects(checkFile(path, label, 'the file'), {
      code: 'digest_mismatch',
      message: `the file: the data has sha256 ${sha256(flipped)}, but its label says ${label.sha256}`,
    }, `a changed last byte, ${size} bytes`);
    writeFileSync(path, data.subarray(0, size - 1));
    await t.rejects(checkFile(path, label, 'the file'), {
      code: 'size_mismatch',
      message: `the file: got ${size - 1} bytes, but its label says ${size} bytes`,
    }, `a short file, ${size} bytes`);
  }
  await t.rejects(checkFile(join(dir, 'absent'), { sha256: sha256(''), mediaType: 'text/plain', name: 'x', size: 0 }, 'x'), { code: 'ENOENT' });
});

t.test('readCheckedFile reads a small file in two thread-pool calls (open, one read), one of another size in one (open)', async (t) => {
  const dir = t.testdir();
  const data = Buffer.from('a small parcel, read whole');
  const label = { sha256: sha256(data), mediaType: 'text/plain', name: 'small.txt', size: data.length };
  const path = join(dir, 'small.dat');
  writeFileSync(path, data);
  const read = await withPoolCalls(() => readCheckedFile(path, label, 'the file'));
  t.same(read.result, data);
  // Before: four (the open, a read of one byte more than the label's size, a read at the end, the close).
  t.equal(read.calls.length, 2, `calls: ${read.calls.join(', ')}`);
  for (const [what, bytes] of [['longer', Buffer.concat([data, Buffer.from('!')])], ['shorter', data.subarray(1)]] as const) {
    writeFileSync(path, bytes);
    const refused = await withPoolCalls(() =>
      t.rejects(readCheckedFile(path, label, 'the file'), {
        code: 'size_mismatch',
        message: `the file: got ${bytes.length} bytes, but its label says ${data.length} bytes`,
      }),
    );
    t.equal(refused.calls.length, 1, `a ${what} file is not read (calls: ${refused.calls.join(', ')})`);
  }
  const flipped = Buffer.from(data);
  flipped[0] = (flipped[0] ?? 0) ^ 1;
  writeFileSync(path, flipped);
  await t.rejects(readCheckedFile(path, label, 'the file'), { code: 'digest_mismatch', message: `the file: the data has sha256 ${sha256(flipped)}, but its label says ${label.sha256}` });
  const empty = { sha256: sha256(''), mediaType: 'text/plain', name: 'empty.txt', size: 0 };
  writeFileSync(join(dir, 'empty.dat'), '');
  t.same(await readCheckedFile(join(dir, 'empty.dat'), empty, 'the empty file'), Buffer.alloc(0), 'an empty file');
  await t.rejects(readCheckedFile(join(dir, 'absent'), empty, 'x'), { code: 'ENOENT' });
});

t.test('releaseDifferences', async (t) => {
  const v1 = loadScaffold('valid_v1').invoice;
  t.same(releaseDifferences(v1, v1), []);
  const hostSigned: Invoice = {
    ...v1,
    signature: [...(v1.signature ?? []), { by: 'Host', signature: 'c2ln', key: 'a2V5', role: 'host', at: 1 }],
    yanked: false,
  };
  t.same(releaseDifferences(hostSigned, v1), [], 'host signatures and yank state do not count');
  const reordered: Invoice = JSON.parse(JSON.stringify(v1)) as Invoice;
  reordered.annotations = Object.fromEntries(Object.entries(v1.annotations ?? {}).reverse());
  t.same(releaseDifferences(reordered, v1), [], 'key order does not count');
  const defaults = signedInvoice('example.com/g', '1.0.0', [], { extra: { group: [{ name: 'g' }] } });
  const explicit: Invoice = { ...defaults, group: [{ name: 'g', required: false, satisfiedBy: 'allOf' }] };
  t.same(releaseDifferences(defaults, explicit), [], 'defaults written out or left implicit are the same');
  const described: Invoice = { ...v1, bindle: { ...v1.bindle, description: 'changed' } };
  t.same(releaseDifferences(described, v1), ['bindle name, version, description or authors differ']);
  const annotated: Invoice = { ...v1, annotations: { extra: 'yes' } };
  t.same(releaseDifferences(annotated, v1), ['annotations differ']);
  const resigned: Invoice = { ...v1, signature: (v1.signature ?? []).map((s) => ({ ...s, at: s.at + 1 })) };
  t.same(releaseDifferences(resigned, v1), ['signatures differ']);
  const grouped: Invoice = { ...v1, group: [{ name: 'extra' }] };
  t.same(releaseDifferences(grouped, v1), ['groups differ']);
});
