/**
 * core/fs-atomic: temp files beside their target, written from bytes or from a stream in
 * batches (many small chunks, large chunks, empty chunks, with or without fsync), removed when
 * the stream fails; bytes given whole in two thread-pool calls; atomic replacement; group
 * commit of directory fsyncs.
 */
import t from 'tap';
import { constants, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DirectorySync, SYNCED_CREATE_FLAGS, WRITE_BATCH_BYTES, writeFileAtomic, writeTempFile } from '../../core/fs-atomic.js';
import { withPoolCalls } from '../helpers/pool-calls.js';

/** Deterministic bytes that differ from chunk to chunk, so that reordered or lost chunks show. */
function chunk(index: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (index * 7 + i) & 0xff;
  return out;
}

async function* fromChunks(chunks: readonly Buffer[], failAfter?: number): AsyncGenerator<Buffer> {
  for (const [i, c] of chunks.entries()) {
    if (i === failAfter) throw new Error('the source broke');
    yield c;
  }
}

t.test('a stream of many small chunks, with empty ones among them', async (t) => {
  const dir = t.testdir();
  const target = join(dir, 'sub', 'file.bin');
  // More chunks than one batch may hold, and more bytes than one batch.
  const chunks = Array.from({ length: 3000 }, (_, i) => (i % 97 === 0 ? Buffer.alloc(0) : chunk(i, 1000)));
  const temp = await writeTempFile(target, fromChunks(chunks), 0o640);
  t.equal(dirname(temp), dirname(target), 'beside the target');
  t.same(readFileSync(temp), Buffer.concat(chunks));
  t.equal(statSync(temp).mode & 0o777, 0o640);
  t.same(readdirSync(join(dir, 'sub')), [temp.slice(dirname(temp).length + 1)], 'the target itself is not created');
});

t.test('a stream of large chunks, without fsync', async (t) => {
  const dir = t.testdir();
  const chunks = [chunk(1, WRITE_BATCH_BYTES - 1), chunk(2, WRITE_BATCH_BYTES + 3), chunk(3, 5), chunk(4, 3 * WRITE_BATCH_BYTES)];
  const temp = await writeTempFile(join(dir, 'big.bin'), fromChunks(chunks), 0o444, { sync: false });
  t.same(readFileSync(temp), Buffer.concat(chunks));
  t.equal(statSync(temp).mode & 0o777, 0o444);
});

t.test('a stream that fails after some batches were written leaves nothing behind', async (t) => {
  const dir = t.testdir();
  const chunks = Array.from({ length: 40 }, (_, i) => chunk(i, 100_000));
  await t.rejects(writeTempFile(join(dir, 'broken.bin'), fromChunks(chunks, 30), 0o644), { message: 'the source broke' });
  t.same(readdirSync(dir), [], 'the temp file is removed');
});

t.test('a temp file goes into its existing directory, or one made for it (nested); a path through a file fails', async (t) => {
  const dir = t.testdir({ existing: {}, 'plain.txt': 'not a directory' });
  const beside = await writeTempFile(join(dir, 'existing', 'a.bin'), Buffer.from('a'), 0o600);
  t.equal(dirname(beside), join(dir, 'existing'));
  const nested = await writeTempFile(join(dir, 'new', 'deeper', 'b.bin'), Buffer.from('b'), 0o600);
  t.equal(readFileSync(nested, 'utf8'), 'b', 'the missing directories are made');
  await t.rejects(writeTempFile(join(dir, 'plain.txt', 'c.bin'), Buffer.from('c'), 0o600), { code: 'ENOTDIR' });
});

t.test('writeFileAtomic replaces a file', async (t) => {
  const dir = t.testdir({ 'a.txt': 'old' });
  await writeFileAtomic(join(dir, 'a.txt'), 'new', 0o644);
  t.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'new');
  t.same(readdirSync(dir), ['a.txt']);
});

t.test('DirectorySync: calls made while an fsync runs share the next one; a later call starts a new one', async (t) => {
  const sync = new DirectorySync(t.testdir());
  const first = sync.sync();
  const second = sync.sync();
  const third = sync.sync();
  t.not(first, second, 'a call during an fsync waits for one that starts after it');
  t.equal(second, third, 'which every call made meanwhile shares');
  await Promise.all([first, second, third]);
  const later = sync.sync();
  t.not(later, second, 'once all are done, a call starts its own');
  await later;
});

t.test('DirectorySync: a failed fsync rejects its callers, and the next call tries again', async (t) => {
  const dir = join(t.testdir(), 'not-yet');
  const sync = new DirectorySync(dir);
  const failing = sync.sync();
  const queued = sync.sync();
  await t.rejects(failing, { code: 'ENOENT' });
  await t.rejects(queued, { code: 'ENOENT' }, 'the queued fsync ran (after the failed one) and failed too');
  mkdirSync(dir);
  await sync.sync();
  t.pass('it recovers once the directory exists');
});

t.test('a temp file gets exactly the mode asked for, whatever the umask', async (t) => {
  const dir = t.testdir();
  const before = process.umask(0o077);
  t.teardown(() => {
    process.umask(before);
  });
  const fromBytes = await writeTempFile(join(dir, 'bytes.bin'), chunk(1, 5000), 0o644);
  const fromStream = await writeTempFile(join(dir, 'stream.bin'), fromChunks([chunk(2, 100), chunk(3, 200)]), 0o664, { sync: false });
  t.equal(statSync(fromBytes).mode & 0o777, 0o644, 'from bytes');
  t.equal(statSync(fromStream).mode & 0o777, 0o664, 'from a stream');
  t.same(readFileSync(fromStream), Buffer.concat([chunk(2, 100), chunk(3, 200)]));
  await t.rejects(writeTempFile(join(dir, 'broken.bin'), fromChunks([chunk(4, 10), chunk(5, 10)], 1), 0o644), { message: 'the source broke' });
  t.same(readdirSync(dir).sort(), [basename(fromBytes), basename(fromStream)].sort(), 'a failed write leaves nothing');
});

t.test('bytes given whole cost two thread-pool calls, the create and the (synced) write; an empty file is fsynced on its own', async (t) => {
  const dir = t.testdir();
  const data = chunk(5, 4096);
  const synced = await withPoolCalls(() => writeTempFile(join(dir, 'synced.bin'), data, 0o640));
  // Before: five (a FileHandle's open, its write, chmod, fsync and close).
  t.equal(synced.calls.length, SYNCED_CREATE_FLAGS === undefined ? 3 : 2, `calls: ${synced.calls.join(', ')}`);
  t.same(readFileSync(synced.result), data);
  t.equal(statSync(synced.result).mode & 0o777, 0o640);
  const unsynced = await withPoolCalls(() => writeTempFile(join(dir, 'unsynced.bin'), 'text', 0o600, { sync: false }));
  t.equal(unsynced.calls.length, 2, `without sync: ${unsynced.calls.join(', ')}`);
  t.equal(readFileSync(unsynced.result, 'utf8'), 'text');
  const empty = await withPoolCalls(() => writeTempFile(join(dir, 'empty.bin'), Buffer.alloc(0), 0o600));
  t.equal(empty.calls.length, 2, `an empty file: the create and an fsync (${empty.calls.join(', ')})`);
  t.equal(readFileSync(empty.result).length, 0);
});

t.test('SYNCED_CREATE_FLAGS: an exclusive create for writing, each write synced (O_DSYNC) where the platform has it', async (t) => {
  if (constants.O_DSYNC === undefined) {
    t.equal(SYNCED_CREATE_FLAGS, undefined, 'none without O_DSYNC: the file is fsynced instead');
    return;
  }
  t.equal(SYNCED_CREATE_FLAGS, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC);
});
