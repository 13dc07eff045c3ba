/**
 * readAtMost (core/bounded-read.ts): a stream within its bound comes back whole (its one chunk
 * without a copy); one past it comes back cut at the bound with `over`, destroyed, and read no
 * further than the chunk that crossed; a stream's error is thrown as it is.
 */
import t from 'tap';
import { Readable } from 'node:stream';
import { readAtMost } from '../../core/bounded-read.js';

/** A stream of `chunks`, counting how many of them were pulled. */
function counted(chunks: Buffer[]): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  const stream = new Readable({
    highWaterMark: 1,
    read() {
      const next = chunks[pulled];
      pulled += 1;
      this.push(next ?? null);
    },
  });
  return { stream, pulled: () => pulled };
}

t.test('a stream within the bound is read whole', async (t) => {
  const chunk = Buffer.from('one chunk');
  const one = await readAtMost(Readable.from([chunk]), 100);
  t.equal(one.over, false);
  t.equal(one.bytes, chunk, 'a single chunk is returned as it is, not copied');

  const several = await readAtMost(Readable.from([Buffer.from('ab'), Buffer.from('cd'), Buffer.from('ef')]), 6);
  t.same(several, { bytes: Buffer.from('abcdef'), over: false }, 'exactly the bound is within it');

  const empty = await readAtMost(Readable.from([]), 10);
  t.same(empty, { bytes: Buffer.alloc(0), over: false });
  t.same(await readAtMost(Readable.from([]), 0), { bytes: Buffer.alloc(0), over: false }, 'an empty stream is within a bound of 0');
});

t.test('a stream past the bound is cut there, destroyed and not read further', async (t) => {
  const { stream, pulled } = counted([Buffer.from('abcd'), Buffer.from('efgh'), Buffer.from('ijkl'), Buffer.from('mnop')]);
  const read = await readAtMost(stream, 6);
  t.equal(read.over, true);
  t.equal(read.bytes.toString(), 'abcdef', 'the first `limit` bytes');
  t.ok(stream.destroyed, 'the stream is destroyed');
  t.ok(pulled() <= 3, `no more than one chunk past the one that crossed the bound was pulled (${pulled()})`);

  const byOne = await readAtMost(Readable.from([Buffer.from('abc')]), 2);
  t.same(byOne, { bytes: Buffer.from('ab'), over: true }, 'one byte over is over');
  const anything = await readAtMost(Readable.from([Buffer.from('x')]), 0);
  t.same(anything, { bytes: Buffer.alloc(0), over: true }, 'any byte is over a bound of 0');
});

t.test("the stream's error is thrown as it is", async (t) => {
  const failure = new Error('cut short');
  const stream = new Readable({
    read() {
      this.push(Buffer.from('part'));
      this.destroy(failure);
    },
  });
  await t.rejects(readAtMost(stream, 100), failure);
});
