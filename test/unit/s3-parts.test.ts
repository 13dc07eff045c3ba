/**
 * server/storage/s3-parts: PartWriter cuts received chunks of any size into parts of exactly the
 * part size (the last one shorter), numbered in order; sends at most `inFlight` at once while the
 * next fills, holds at most `inFlight + 1` part buffers however many parts there are, allocates
 * none for a part until all of it has arrived, lets its spare buffers go when its bytes stop
 * coming, and reports a failed part to the caller that waits for it; with a PartSpool, reserves
 * what each part holds in memory until the service has answered for it (spares too), spills a
 * part the cap refuses to an unlinked file, sending it intact, and reads spooled parts back
 * within the read-back cap.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import t from 'tap';

import { IDLE_RELEASE_MS } from '../../server/storage/idle-watch.js';
import { PART_WHOLE_FROM_BYTES, PartSpool } from '../../server/storage/part-spool.js';
import { PartWriter } from '../../server/storage/s3-parts.js';

/** A part the writer handed over, its bytes copied (the writer reuses the buffer), and how to let it finish. */
interface SentPart {
  readonly partNumber: number;
  readonly bytes: Buffer;
  /** Lets the part succeed (or fail with `err`); once only, later calls do nothing. */
  readonly done: (err?: Error) => void;
  readonly finished: () => boolean;
}

/** A sender whose parts stay under way until the test finishes them. */
function heldSender(): { send: (partNumber: number, body: Buffer) => Promise<void>; sent: SentPart[]; underWay: () => number } {
  const sent: SentPart[] = [];
  let open = 0;
  return {
    sent,
    underWay: () => open,
    send: (partNumber, body) => {
      open++;
      return new Promise<void>((resolve, reject) => {
        let finished = false;
        sent.push({
          partNumber,
          bytes: Buffer.from(body),
          finished: () => finished,
          done: (err) => {
            if (finished) return;
            finished = true;
            open--;
            if (err === undefined) resolve();
            else reject(err);
          },
        });
      });
    },
  };
}

const deterministic = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 131 + 17) & 0xff));

/** Finishes `writer`, letting every part it sent (the last one too) be stored. */
async function finishLettingPartsDone(writer: PartWriter, sent: SentPart[]): Promise<void> {
  const finishing = writer.finish();
  for (const part of sent) part.done();
  await finishing;
}

/** The indexes of the first `count` of `promises` to fulfil, in that order; rejects with the first rejection. */
function firstFulfilled(promises: Array<Promise<unknown>>, count: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const done: number[] = [];
    for (const [i, promise] of promises.entries()) {
      promise.then(() => {
        done.push(i);
        if (done.length === count) resolve(done);
      }, reject);
    }
  });
}

/** Whether `promise` has settled after the queued callbacks ran. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

t.test('chunks of any size become parts of exactly the part size, in order, the last one shorter', async (t) => {
  const data = deterministic(10 * 1000 + 333);
  const parts: { partNumber: number; bytes: Buffer }[] = [];
  const writer = new PartWriter(1000, 3, (partNumber, body) => {
    parts.push({ partNumber, bytes: Buffer.from(body) });
    return Promise.resolve();
  });
  const pieces = [1, 999, 1, 2500, 7, 64, 3000];
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = pieces[i % pieces.length] ?? 1;
    await writer.add(data.subarray(offset, offset + size));
    offset += size;
  }
  await writer.finish();
  t.same(
    parts.map((p) => p.partNumber),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  );
  t.same(
    parts.map((p) => p.bytes.length),
    [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 333],
  );
  t.ok(Buffer.concat(parts.map((p) => p.bytes)).equals(data), 'the parts hold the bytes in order');
  t.equal(writer.parts, 11);
  t.ok(writer.buffers <= 4, `part buffers allocated: ${writer.buffers}`);
});

t.test('an upload that is a whole number of parts sends no empty last part; nothing at all sends none', async (t) => {
  const sizes: number[] = [];
  const writer = new PartWriter(100, 2, (_, body) => {
    sizes.push(body.length);
    return Promise.resolve();
  });
  await writer.add(deterministic(300));
  await writer.finish();
  t.same(sizes, [100, 100, 100]);
  const idle = new PartWriter(100, 2, () => Promise.reject(new Error('nothing to send')));
  await idle.finish();
  t.equal(idle.parts, 0);
});

t.test('at most inFlight parts are sent while the next fills; then add waits for the oldest', async (t) => {
  const { send, sent, underWay } = heldSender();
  const writer = new PartWriter(10, 2, send);
  await writer.add(deterministic(10));
  await writer.add(deterministic(10));
  t.equal(underWay(), 2, 'two parts under way');
  await writer.add(deterministic(9));
  const filling = writer.add(deterministic(1));
  t.notOk(await isSettled(filling), 'a third full part waits for the oldest of the two');
  t.equal(underWay(), 3, 'while it is being sent beside them');
  sent[1]?.done();
  t.notOk(await isSettled(filling), 'the second finishing first is not the oldest');
  sent[0]?.done();
  t.ok(await isSettled(filling), 'the first finishing lets it go on');
  await filling;
  t.equal(writer.buffers, 3, 'inFlight + 1 buffers');
  for (let i = 0; i < 20; i++) {
    const adding = writer.add(deterministic(10));
    while (!(await isSettled(adding))) {
      t.ok(underWay() <= 3, 'never more than inFlight parts and the one just filled');
      sent.find((part) => !part.finished())?.done();
    }
    await adding;
  }
  await finishLettingPartsDone(writer, sent);
  t.equal(writer.parts, 23);
  t.equal(writer.buffers, 3, `23 parts, still inFlight + 1 buffers`);
});

t.test('a buffer is reused only once its part has settled, so no part is overwritten while it is sent', async (t) => {
  const data = deterministic(40);
  const copies: Buffer[] = [];
  const writer = new PartWriter(4, 1, async (partNumber, body) => {
    const copy = Buffer.from(body);
    copies.push(copy);
    await new Promise((resolve) => setImmediate(resolve));
    t.ok(body.equals(copy), `part ${partNumber} unchanged while it was sent`);
  });
  for (let offset = 0; offset < data.length; offset += 3) await writer.add(data.subarray(offset, offset + 3));
  await writer.finish();
  t.ok(Buffer.concat(copies).equals(data));
  t.equal(writer.buffers, 2);
});

t.test('no part buffer is allocated until the part is complete: an upload holds no more than it received', async (t) => {
  const bodies: Buffer[] = [];
  const writer = new PartWriter(1000, 3, (_, body) => {
    bodies.push(Buffer.from(body));
    return Promise.resolve();
  });
  const data = deterministic(1400);
  for (let offset = 0; offset < 999; offset += 100) await writer.add(data.subarray(offset, Math.min(offset + 100, 999)));
  t.equal(writer.buffers, 0, '999 bytes of a 1000-byte part: no buffer yet');
  t.equal(bodies.length, 0, 'and nothing sent');
  await writer.add(data.subarray(999, 1000));
  t.equal(writer.buffers, 1, 'the 1000th byte: one buffer, the bytes before copied into it, and sent');
  t.equal(bodies.length, 1);
  await writer.add(data.subarray(1000, 1400));
  t.equal(writer.buffers, 1, 'the next part goes into the first one\'s buffer once that part is stored');
  await writer.finish();
  t.same(bodies.map((b) => b.length), [1000, 400]);
  t.ok(Buffer.concat(bodies).equals(data));

  const short: Buffer[] = [];
  const few = new PartWriter(1000, 3, (_, body) => {
    short.push(Buffer.from(body));
    return Promise.resolve();
  });
  await few.add(data.subarray(0, 7));
  await few.add(data.subarray(7, 600));
  await few.finish();
  t.equal(few.buffers, 0, 'an upload of less than one part allocates no part buffer');
  t.same(short, [data.subarray(0, 600)], 'and sends its bytes as one part');
});

t.test('an upload that receives nothing for a whole IDLE_RELEASE_MS lets its spare buffers go, and parts stored then keep none', async (t) => {
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 2, send);
  const data = deterministic(68);
  const idle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 2 * IDLE_RELEASE_MS + 100));
  await writer.add(data.subarray(0, 10));
  await writer.add(data.subarray(10, 20));
  const third = writer.add(data.subarray(20, 30));
  sent[0]?.done();
  await third;
  sent[1]?.done();
  sent[2]?.done();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(writer.held, 30, 'while bytes keep coming, stored parts\' buffers are kept for the next parts');
  await idle();
  t.equal(writer.held, 0, 'nothing received for a while: the spares are let go');
  await writer.add(data.subarray(30, 35));
  t.equal(writer.held, 5, 'a few bytes come: the part keeps just its chunks');
  await writer.add(data.subarray(35, 40));
  t.equal(sent.length, 4, 'the part completes and is sent in a buffer of its own');
  await idle();
  sent[3]?.done();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(writer.held, 0, 'a part stored after the spares were let go keeps no buffer');
  await writer.add(data.subarray(40, 58));
  t.equal(writer.held, 8, 'bytes come again: parts are filled as before');
  await finishLettingPartsDone(writer, sent);
  t.ok(Buffer.concat(sent.map((part) => part.bytes)).equals(data.subarray(0, 58)), 'the bytes, in order');
});

t.test('an upload waiting for the service, not its client, keeps its spares however long it waits', async (t) => {
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 1, send);
  const data = deterministic(20);
  await writer.add(data.subarray(0, 10));
  const second = writer.add(data.subarray(10, 20));
  await new Promise((resolve) => setTimeout(resolve, 2 * IDLE_RELEASE_MS + 100));
  t.notOk(await isSettled(second), 'the second part waits for the first to be stored');
  sent[0]?.done();
  await second;
  t.equal(writer.held, 10, 'the first part\'s buffer is kept for the next part');
  await finishLettingPartsDone(writer, sent);
  t.ok(Buffer.concat(sent.map((part) => part.bytes)).equals(data));
});

t.test('receiving costs no timer per chunk: an idle timer is set once a part is sent', async (t) => {
  const real = globalThis.setTimeout;
  let timers = 0;
  const counting = ((...args: Parameters<typeof setTimeout>) => {
    timers++;
    return real(...args);
  }) as typeof setTimeout;
  const { send, sent } = heldSender();
  const writer = new PartWriter(1000, 2, send);
  const data = deterministic(10_500);
  globalThis.setTimeout = counting;
  try {
    for (let offset = 0; offset < 999; offset += 9) await writer.add(data.subarray(offset, Math.min(offset + 9, 999)));
    t.equal(timers, 0, '111 chunks and no part sent: no timer');
    await writer.add(data.subarray(999, 1000));
    sent[0]?.done();
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(timers, 1, 'a part sent, then stored and its buffer kept: one timer');
    for (let offset = 1000; offset < 10_500; offset += 100) {
      const adding = writer.add(data.subarray(offset, offset + 100));
      for (const part of sent) part.done();
      await adding;
      await new Promise((resolve) => setImmediate(resolve));
    }
    t.equal(timers, 1, 'nine more parts through the spares, 95 chunks: still that one timer');
  } finally {
    globalThis.setTimeout = real;
  }
  await finishLettingPartsDone(writer, sent);
  t.ok(Buffer.concat(sent.map((part) => part.bytes)).equals(data), 'the bytes, in order');
});

t.test('bytes that keep coming, however slowly, keep the spares', async (t) => {
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 2, send);
  const data = deterministic(30);
  await writer.add(data.subarray(0, 10));
  sent[0]?.done();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(writer.held, 10, 'the stored part\'s buffer is a spare');
  for (let i = 10; i < 15; i++) {
    await new Promise((resolve) => setTimeout(resolve, IDLE_RELEASE_MS * 0.6));
    await writer.add(data.subarray(i, i + 1));
  }
  t.equal(writer.held, 10, `a byte every ${IDLE_RELEASE_MS * 0.6} ms for ${IDLE_RELEASE_MS * 3} ms: the spare (now filling) is kept`);
  await finishLettingPartsDone(writer, sent);
  t.ok(Buffer.concat(sent.map((part) => part.bytes)).equals(data.subarray(0, 15)), 'the bytes, in order');
});

t.test('close ends the writer: its spares are let go and a part stored afterwards keeps no buffer', async (t) => {
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 2, send);
  const data = deterministic(20);
  await writer.add(data.subarray(0, 10));
  await writer.add(data.subarray(10, 20));
  sent[0]?.done();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(writer.held, 10, 'a stored part\'s buffer is a spare');
  writer.close();
  t.equal(writer.held, 0, 'closed: no spare');
  sent[1]?.done();
  await writer.settled();
  t.equal(writer.held, 0, 'a part stored after the close keeps no buffer');
});

t.test('an upload of exactly one part: one buffer holding it all, handed over with its last byte', async (t) => {
  const data = deterministic(5000);
  let whole: Buffer | undefined;
  const gather = new PartWriter(data.length, 1, (partNumber, body) => {
    t.equal(partNumber, 1);
    whole = body;
    return Promise.resolve();
  });
  for (let offset = 0; offset < data.length - 1; offset += 700) await gather.add(data.subarray(offset, Math.min(offset + 700, data.length - 1)));
  t.equal(whole, undefined, 'nothing handed over before the last byte');
  await gather.add(data.subarray(data.length - 1));
  t.ok(whole?.equals(data), 'the whole parcel, in order');
  t.equal(gather.buffers, 1);
  await gather.finish();
  t.equal(gather.parts, 1, 'finish sends nothing more');
});

t.test('a failed part fails the add that waits for it, and finish; settled waits for every part', async (t) => {
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 1, send);
  await writer.add(deterministic(10));
  const adding = writer.add(deterministic(10));
  sent[0]?.done(new Error('part 1 refused'));
  await t.rejects(adding, { message: 'part 1 refused' });
  const settling = writer.settled();
  t.notOk(await isSettled(settling), 'part 2 is still under way');
  sent[1]?.done();
  await settling;
  await t.rejects(writer.finish(), { message: 'part 1 refused' });
});

t.test('part size and parts in flight must be positive integers', async (t) => {
  const send = (): Promise<void> => Promise.resolve();
  t.throws(() => new PartWriter(0, 1, send), RangeError);
  t.throws(() => new PartWriter(1.5, 1, send), RangeError);
  t.throws(() => new PartWriter(10, 0, send), RangeError);
});

t.test('with a PartSpool, a part reserves its bytes, then its size, and is spilled to a file once the cap refuses more', async (t) => {
  const dir = t.testdir();
  const spool = new PartSpool(dir, 20, 6);
  const writers = [0, 1, 2].map(() => {
    const parts: Buffer[] = [];
    return { parts, writer: new PartWriter(10, 2, (_, body) => {
      parts.push(Buffer.from(body));
      return Promise.resolve();
    }, spool) };
  });
  const [a, b, c] = writers;
  if (a === undefined || b === undefined || c === undefined) throw new Error('three writers');
  const data = deterministic(60);
  for (const { writer } of writers) await writer.add(data.subarray(0, 5));
  t.same([spool.held, spool.files], [15, 0], 'three parts begun: each reserves the few bytes it holds, not a part\'s size');
  await a.writer.add(data.subarray(5, 10));
  await new Promise(setImmediate);
  t.same([spool.held, a.writer.held], [20, 10], 'a part sent and stored: its buffer is kept as a spare, with a reservation of its size');
  await a.writer.add(data.subarray(10, 11));
  t.same([spool.held, a.writer.held], [20, 10], 'the next part takes up the spare buffer at once, with its reservation');
  await a.writer.add(data.subarray(11, 17));
  t.same([spool.held, a.writer.held], [20, 10]);
  await c.writer.add(data.subarray(5, 8));
  t.same([spool.held, spool.files], [15, 1], 'refused, the part is spilled to a file with the bytes it held, its reservation given back');
  t.equal(c.writer.held, 0, 'and holds no memory');
  t.same(await readdir(dir), [], 'its file is unlinked from the start');
  await c.writer.add(data.subarray(8, 10));
  await new Promise(setImmediate);
  t.same([c.parts.length, spool.files, spool.buffers.lent], [1, 0, 0], 'the spooled part, complete, is read back and sent, its file closed and its read-back room given back');
  t.same([spool.held, c.writer.held], [15, 0], 'its buffer is not kept: the cap could not take it');
  for (let offset = 10; offset < 35; offset += 3) await c.writer.add(data.subarray(offset, Math.min(offset + 3, 35)));
  await c.writer.finish();
  c.writer.close();
  await a.writer.finish();
  a.writer.close();
  await b.writer.finish();
  b.writer.close();
  t.equal(spool.held, 0, 'every reservation given back');
  t.equal(spool.files, 0, 'every file closed');
  t.ok(Buffer.concat(c.parts).equals(data.subarray(0, 35)), 'the spooled upload\'s bytes, in order');
  t.same(c.parts.map((p) => p.length), [10, 10, 10, 5]);
  t.ok(Buffer.concat(a.parts).equals(data.subarray(0, 17)));
  t.ok(Buffer.concat(b.parts).equals(data.subarray(0, 5)));
});

t.test('a part in memory keeps its reservation while it is sent, until the service answers', async (t) => {
  const spool = new PartSpool(t.testdir(), 25, 6);
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 2, send, spool);
  for (const size of [3, 3, 4, 3, 3, 4]) await writer.add(deterministic(size));
  t.same([sent.length, spool.held, writer.held], [2, 20, 0], 'two parts under way: both still counted, though the writer holds no part being filled');
  const other = new PartWriter(10, 2, send, spool);
  await other.add(deterministic(7));
  t.same([spool.held, spool.files], [20, 1], 'so another upload\'s part past wholeFrom finds no room and is spooled');
  sent[0]?.done();
  await new Promise(setImmediate);
  t.same([spool.held, writer.held], [20, 10], 'the first part stored: its buffer a spare, still reserved');
  writer.close();
  t.equal(spool.held, 10, 'closed: the spare\'s reservation given back; the part still under way keeps its own');
  sent[1]?.done();
  await new Promise(setImmediate);
  t.equal(spool.held, 0, 'answered: given back too, and its buffer not kept by a closed writer');
  other.close();
  t.same([spool.held, spool.files], [0, 0]);
});

t.test('an idle upload gives up its spares and a part buffer holding few bytes, keeping a reservation of those bytes', async (t) => {
  const spool = new PartSpool(t.testdir(), 100, 6);
  const { send, sent } = heldSender();
  const writer = new PartWriter(10, 2, send, spool);
  const data = deterministic(20);
  await writer.add(data.subarray(0, 10));
  sent[0]?.done();
  await new Promise(setImmediate);
  await writer.add(data.subarray(10, 13));
  t.same([spool.held, writer.held], [10, 10], 'three bytes of the next part, in the spare buffer');
  await new Promise((resolve) => setTimeout(resolve, 2 * IDLE_RELEASE_MS + 100));
  t.same([spool.held, writer.held], [3, 3], 'idle: the buffer given up, its three bytes kept and reserved');
  await writer.add(data.subarray(13));
  t.equal(sent.length, 2, 'the part completed');
  t.ok(sent[1]?.bytes.equals(data.subarray(10)), 'with its bytes in order');
  sent[1]?.done();
  await writer.finish();
  writer.close();
  t.equal(spool.held, 0);
});

t.test('part buffers an upload lets go are kept by the spool and taken up by the next upload', async (t) => {
  const spool = new PartSpool(t.testdir(), 100, 6);
  const send = (): Promise<void> => Promise.resolve();
  const first = new PartWriter(10, 2, send, spool);
  for (const size of [4, 4, 4, 4, 4]) await first.add(deterministic(size));
  await new Promise(setImmediate);
  t.same([first.buffers, first.held], [1, 10], 'one buffer for two parts, a spare now');
  first.close();
  t.same([spool.held, spool.buffers.free], [0, 10], 'closed: its spare is the spool\'s, free');
  const second = new PartWriter(10, 2, send, spool);
  for (const size of [4, 4, 4]) await second.add(deterministic(size));
  t.same([second.buffers, spool.buffers.free], [0, 0], 'the next upload\'s part takes it up instead of allocating one');
  await second.finish();
  second.close();
});

t.test('spooled parts are read back under the read-back cap, waiting for room while others are sent', async (t) => {
  const spool = new PartSpool(t.testdir(), 0, 6, 20);
  const { send, sent } = heldSender();
  const writers = [0, 1, 2].map(() => new PartWriter(10, 2, send, spool));
  const data = deterministic(30);
  // Each part comes in two chunks (a part that arrives whole in one chunk is sent as it is).
  for (const [i, writer] of writers.entries()) await writer.add(data.subarray(10 * i, 10 * i + 5));
  const adding = writers.map((writer, i) => writer.add(data.subarray(10 * i + 5, 10 * i + 10)));
  // Which two parts are read back first is the order their spool files' appends finish in the
  // thread pool: any two.
  const first = await firstFulfilled(adding, 2);
  const third = [0, 1, 2].find((i) => !first.includes(i)) ?? -1;
  t.same([sent.length, spool.buffers.lent, spool.buffers.waiting], [2, 20, 1], 'two parts read back and under way fill the read-back cap; the third waits');
  t.notOk(await isSettled(adding[third] ?? Promise.resolve()), 'its add waits for room');
  sent[0]?.done();
  await adding[third];
  t.same([sent.length, spool.buffers.lent, spool.buffers.waiting], [3, 20, 0], 'one answered: the third is read back and sent');
  t.ok(sent[2]?.bytes.equals(data.subarray(10 * third, 10 * third + 10)), 'its bytes');
  sent[1]?.done();
  sent[2]?.done();
  for (const writer of writers) {
    await writer.finish();
    writer.close();
  }
  t.same([spool.buffers.lent, spool.held, spool.files], [0, 0, 0], 'everything given back');
});

t.test('uploads that send a few bytes each and wait do not take the cap from the others', async (t) => {
  const spool = new PartSpool(t.testdir(), 30, 6);
  const send = (): Promise<void> => Promise.resolve();
  const waiting = Array.from({ length: 15 }, () => new PartWriter(10, 2, send, spool));
  for (const writer of waiting) await writer.add(deterministic(1));
  const sending = new PartWriter(10, 2, send, spool);
  await sending.add(deterministic(4));
  t.same([spool.held, spool.files], [19, 0], 'fifteen waiting parts hold 15 bytes, and a sixteenth part is kept in memory');
  for (const writer of [...waiting, sending]) writer.close();
  t.equal(spool.held, 0);
});

t.test('parts that pass wholeFrom reserve their whole size: first come, first kept in memory', async (t) => {
  const spool = new PartSpool(t.testdir(), 20, 3);
  const send = (): Promise<void> => Promise.resolve();
  const writers = [0, 1, 2].map(() => new PartWriter(10, 2, send, spool));
  for (const writer of writers) await writer.add(deterministic(2));
  t.equal(spool.held, 6);
  for (const writer of writers) await writer.add(deterministic(2));
  t.same(writers.map((w) => w.held), [4, 0, 4], 'the first and third keep their bytes in memory; the second, refused, was spilled');
  t.same([spool.held, spool.files], [20, 1], 'the two in memory reserve their whole size');
  for (const writer of writers) writer.close();
  t.same([spool.held, spool.files], [0, 0]);
});

t.test('with no memory allowed, every part begun in a chunk goes through the spool; bytes in random chunks come out in order', async (t) => {
  // Read-back room for four parts (with no memory for parts the default is one at a time).
  const spool = new PartSpool(t.testdir(), 0, PART_WHOLE_FROM_BYTES, 4000);
  const sent: Buffer[] = [];
  let overwritten = 0;
  // Each part is stored a little later, so several are under way at once; a part's bytes must not
  // change until it is stored (the spool lends its buffers again only once they are given back).
  const writer = new PartWriter(1000, 3, (_, body) => {
    const copy = Buffer.from(body);
    sent.push(copy);
    return new Promise((resolve) => setTimeout(() => {
      if (!body.equals(copy)) overwritten++;
      resolve();
    }, 2));
  }, spool);
  const data = deterministic(12_345);
  let chunks = 0;
  for (let offset = 0; offset < data.length; chunks++) {
    const size = 1 + ((offset * 7919) % 900);
    await writer.add(data.subarray(offset, offset + size));
    offset += size;
  }
  await writer.finish();
  writer.close();
  t.ok(Buffer.concat(sent).equals(data), `${chunks} chunks, 13 parts: the bytes, in order`);
  t.equal(spool.spooled, 13, 'each part spooled');
  t.equal(spool.held, 0);
  t.equal(spool.files, 0);
  t.equal(overwritten, 0, 'no part changed while it was being sent');
  t.equal(spool.buffers.lent, 0, 'read-back room given back');
  t.equal(writer.buffers, 0, 'with no memory allowed the upload allocates no part buffer of its own');
  t.ok(spool.buffers.allocated <= 4, `the spool's read-back buffers reused: ${spool.buffers.allocated} for 13 parts, at most inFlight + 1`);
  const whole: Buffer[] = [];
  const inOneChunk = new PartWriter(1000, 3, (_, body) => {
    whole.push(Buffer.from(body));
    return Promise.resolve();
  }, spool);
  await inOneChunk.add(data.subarray(0, 2500));
  t.equal(spool.spooled, 14, 'of one 2,500-byte chunk, the two whole parts are sent as they are; only the part it begins is spooled');
  await inOneChunk.finish();
  inOneChunk.close();
  t.ok(Buffer.concat(whole).equals(data.subarray(0, 2500)));
});

t.test('close gives up the part being filled: its reservation, its spool file', async (t) => {
  const spool = new PartSpool(t.testdir(), 10);
  const send = (): Promise<void> => Promise.resolve();
  const inMemory = new PartWriter(10, 1, send, spool);
  const spooled = new PartWriter(10, 1, send, spool);
  await inMemory.add(deterministic(4));
  await spooled.add(deterministic(7));
  t.same([spool.held, spool.files], [4, 1]);
  inMemory.close();
  spooled.close();
  t.same([spool.held, spool.files], [0, 0], 'both given back');
  inMemory.close();
  t.equal(spool.held, 0, 'a second close gives back nothing more');
});

t.test('a spool that cannot create its file fails the add', async (t) => {
  const dir = t.testdir({ 'not-a-directory': 'x' });
  const writer = new PartWriter(10, 1, () => Promise.resolve(), new PartSpool(join(dir, 'not-a-directory', 'spool'), 0));
  await t.rejects(writer.add(deterministic(3)));
  writer.close();
});
