/**
 * server/storage/part-spool: the memory cap of parts being filled (reserve / release), spool
 * files unlinked from the start and read back whole, a part's place (reserving its bytes while
 * they are few, then its whole size; spilling to a file once refused), and GatheredPart, one part gathered for a single PutObject:
 * in memory within the cap, else spooled and read back within the read-back cap; what it holds
 * counted until it is closed, nothing held afterwards.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import t from 'tap';

import { GatheredPart, PART_MEMORY_CAP_BYTES, PartSpool, readBackCapFor } from '../../server/storage/part-spool.js';

t.test('reserve gives memory within the cap and refuses past it; release gives it back', async (t) => {
  const spool = new PartSpool(t.testdir(), 100);
  t.ok(spool.reserve(60));
  t.notOk(spool.reserve(41), 'past the cap: refused');
  t.equal(spool.held, 60, 'a refusal reserves nothing');
  t.ok(spool.reserve(40), 'up to the cap exactly');
  spool.release(60);
  t.equal(spool.held, 40);
  t.throws(() => new PartSpool(t.testdir(), -1), RangeError);
  t.throws(() => new PartSpool(t.testdir(), 1.5), RangeError);
});

t.test('a spool file is unlinked from the start, takes appends and reads back whole', async (t) => {
  const dir = t.testdir();
  const spool = new PartSpool(dir, 0);
  const part = await spool.create();
  t.same(await readdir(dir), [], 'no name in the directory');
  t.equal(spool.files, 1);
  const data = randomBytes(300_000);
  for (let offset = 0; offset < data.length; offset += 70_000) await part.append(data.subarray(offset, offset + 70_000));
  t.equal(part.size, data.length);
  const back = await part.readInto(Buffer.alloc(data.length + 10));
  t.ok(back.equals(data), 'the bytes, in order');
  await part.close();
  await part.close();
  t.equal(spool.files, 0, 'closed once, counted once');
});

t.test('a part\'s place reserves its bytes while they are few, then its whole size; spills to a file once refused; ends once', async (t) => {
  const dir = t.testdir();
  const spool = new PartSpool(dir, 100, 40);
  const other = spool.begin();
  t.ok(other.hold(30, 60), 'under wholeFrom: just the bytes');
  const place = spool.begin();
  t.equal(place.reserved, 0, 'a new place reserves nothing');
  t.ok(place.hold(39, 60));
  t.same([place.reserved, spool.held], [39, 69]);
  t.ok(place.hold(40, 60), 'from wholeFrom on: the part\'s whole size');
  t.same([place.reserved, spool.held], [60, 90]);
  t.ok(place.hold(55, 60), 'which covers the rest of it');
  t.equal(spool.held, 90);
  const third = spool.begin();
  t.notOk(third.hold(11, 20), 'past the cap: refused');
  t.same([third.reserved, spool.held], [0, 90], 'a refusal reserves nothing');
  t.notOk(spool.begin().hold(5, 20), 'a part begins in memory only while the cap could take its whole size');
  const held = [randomBytes(20), randomBytes(35)];
  const more = randomBytes(5);
  const file = await place.spill([...held, more]);
  t.equal(place.file, file);
  t.same([place.reserved, spool.held, spool.files], [0, 30, 1], 'spilled: its reservation given back, the bytes in a file');
  t.ok((await file.readInto(Buffer.alloc(100))).equals(Buffer.concat([...held, more])), 'the bytes it held, then the rest, in order');
  t.throws(() => place.hold(61, 100), 'a spooled part takes no memory');
  await t.rejects(place.spill([]), 'and spills once');
  place.end();
  other.end();
  other.end();
  third.end();
  t.same([spool.held, spool.files], [0, 0], 'end gives the reservation back and closes the file, once');
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(await readdir(dir), [], 'nothing left in the directory');
  t.throws(() => new PartSpool(dir, 10, 0), RangeError);
});

t.test('a part that ends while its spool file is made spills nothing', async (t) => {
  const spool = new PartSpool(t.testdir(), 0);
  const place = spool.begin();
  const spilling = place.spill([randomBytes(10)]);
  place.end();
  await t.rejects(spilling);
  t.same([spool.held, spool.files], [0, 0]);
});

t.test('a gathered part within the cap is kept in memory, reserving its bytes, then its size, until handed over', async (t) => {
  const spool = new PartSpool(t.testdir(), 1000, 300);
  const data = randomBytes(600);
  const part = new GatheredPart(spool, data.length);
  t.equal(spool.held, 0, 'nothing reserved before its bytes come');
  await part.add(data.subarray(0, 250));
  t.equal(spool.held, 250, 'a few bytes: those bytes reserved, not its size');
  await part.add(data.subarray(250, 400));
  t.equal(spool.held, 600, 'past wholeFrom: its size');
  await part.add(data.subarray(400));
  t.equal(spool.files, 0, 'no spool file');
  t.ok((await part.whole()).equals(data), 'handed over whole');
  t.equal(spool.held, 600, 'the reservation kept while the bytes are sent');
  part.close();
  t.equal(spool.held, 0, 'closed once the service answered: the reservation given back');
  const one = new GatheredPart(spool, 10);
  const chunk = randomBytes(10);
  await one.add(chunk);
  t.equal(await one.whole(), chunk, 'one chunk is handed over as it is, not copied');
  t.equal((await new GatheredPart(spool, 0).whole()).length, 0, 'an empty part');
  await t.rejects(one.add(randomBytes(1)), RangeError, 'more bytes than its size: refused');
});

t.test('a gathered part holding wholeFrom bytes copies them into one buffer of its size, given to the spool\'s free buffers once closed', async (t) => {
  // Sizes past Node's shared pool (4 KiB), so that each buffer is an allocation of its own.
  const spool = new PartSpool(t.testdir(), 10_000, 3000, 10_000);
  const data = randomBytes(6000);
  const chunks = [data.subarray(0, 1000), data.subarray(1000, 3500), data.subarray(3500)];
  const part = new GatheredPart(spool, data.length);
  for (const chunk of chunks) await part.add(chunk);
  const sent = Buffer.from(data);
  for (const chunk of chunks) chunk.fill(0);
  const whole = await part.whole();
  t.ok(whole.equals(sent), 'handed over whole, though the chunks changed since: copied as they came, not kept');
  part.close();
  part.close();
  t.same([spool.held, spool.buffers.free], [0, 6000], 'closed: the reservation given back, the buffer kept free, once');
  const next = new GatheredPart(spool, data.length);
  const again = randomBytes(6000);
  await next.add(again.subarray(0, 4000));
  await next.add(again.subarray(4000));
  const nextWhole = await next.whole();
  t.ok(nextWhole.equals(again), 'the next part of the size');
  t.equal(nextWhole.buffer, whole.buffer, 'takes the free buffer up instead of allocating one');
  t.equal(spool.buffers.free, 0);
  next.close();
});

t.test('a spooled gathered part is read back under the read-back cap, waiting for room, held until closed', async (t) => {
  const spool = new PartSpool(t.testdir(), 0, 100, 500);
  const data = randomBytes(800);
  const parts = [data.subarray(0, 400), data.subarray(400)].map((bytes) => ({ bytes, part: new GatheredPart(spool, bytes.length) }));
  for (const { bytes, part } of parts) await part.add(bytes);
  t.equal(spool.files, 2, 'no memory allowed: both spooled');
  const [first, second] = parts;
  if (first === undefined || second === undefined) throw new Error('two parts');
  t.ok((await first.part.whole()).equals(first.bytes), 'the first read back');
  t.same([spool.buffers.lent, spool.files], [400, 1], 'its room held; its file closed');
  const waiting = second.part.whole();
  await new Promise(setImmediate);
  t.equal(spool.buffers.waiting, 1, 'the second waits: 400 + 400 is past the read-back cap');
  first.part.close();
  t.ok((await waiting).equals(second.bytes), 'the first closed: the second read back');
  t.equal(spool.buffers.lent, 400);
  second.part.close();
  second.part.close();
  t.same([spool.buffers.lent, spool.files, spool.held], [0, 0, 0], 'closed: given back, once');
  const third = new GatheredPart(spool, 600);
  await third.add(randomBytes(600));
  t.ok((await third.whole()).length === 600, 'a part larger than the whole read-back cap goes alone');
  const fourth = new GatheredPart(spool, 10);
  await fourth.add(randomBytes(10));
  const fourthWaits = fourth.whole();
  await new Promise(setImmediate);
  t.equal(spool.buffers.waiting, 1, 'and the next waits for it');
  fourth.close();
  third.close();
  await t.rejects(fourthWaits, /closed while it waited/, 'closed while waiting: refused once its turn comes, holding nothing');
  t.same([spool.buffers.lent, spool.buffers.waiting, spool.files], [0, 0, 0]);
});

t.test('the read-back cap that goes with a memory cap is half of it, at least a byte, and a spool takes it by default', async (t) => {
  t.same([readBackCapFor(256 << 20), readBackCapFor(3), readBackCapFor(0)], [128 << 20, 1, 1]);
  const dir = t.testdir();
  t.equal(new PartSpool(dir).buffers.cap, PART_MEMORY_CAP_BYTES / 2, 'the default spool: 64 MiB');
  t.same([new PartSpool(dir, 100).buffers.cap, new PartSpool(dir, 0).buffers.cap], [50, 1], 'a spool given only its cap');
  t.equal(new PartSpool(dir, 100, 10, 7).buffers.cap, 7, 'a read-back cap given wins');
});

t.test('a gathered part the cap refuses is spilled to a file with what it held, read back whole, and its file closed', async (t) => {
  const dir = t.testdir();
  const spool = new PartSpool(dir, 800, 100);
  const holding = new GatheredPart(spool, 400);
  await holding.add(randomBytes(90));
  const data = randomBytes(500);
  const part = new GatheredPart(spool, data.length);
  await part.add(data.subarray(0, 60));
  t.same([spool.held, spool.files], [150, 0], 'its first bytes fit beside the other part');
  await holding.add(randomBytes(20));
  t.equal(spool.held, 460, 'the other part, past wholeFrom, reserves its size');
  for (let offset = 60; offset < data.length; offset += 70) await part.add(data.subarray(offset, offset + 70));
  t.same([spool.held, spool.files, spool.spooled], [400, 1, 1], 'spilled once refused: its reservation given back');
  await t.rejects(part.add(randomBytes(1)), RangeError, 'spooled too: more bytes than its size refused');
  t.ok((await part.whole()).equals(data), 'read back whole, the bytes held in memory first');
  t.equal(spool.files, 0, 'its file closed');
  const big = new GatheredPart(spool, 500);
  await big.add(randomBytes(10));
  t.same([spool.held, spool.files], [400, 1], 'a part whose whole size the cap could not take begins in a file');
  big.close();
  holding.close();
  holding.close();
  t.equal(spool.held, 0, 'close gives the reservation back, once');
  const dropped = new GatheredPart(new PartSpool(dir, 0), 100);
  await dropped.add(randomBytes(40));
  dropped.close();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(await readdir(dir), [], 'nothing left in the directory');
});
