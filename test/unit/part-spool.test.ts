/**
 * server/storage/part-spool: the memory cap of parts being filled (reserve / release), spool
 * files unlinked from the start and read back whole, and GatheredPart, one part gathered for a
 * single PutObject: in memory within the cap, else spooled; nothing held once handed over or
 * closed.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import t from 'tap';

import { GatheredPart, PartSpool } from '../../server/storage/part-spool.js';

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

t.test('a gathered part within the cap is kept in memory, reserved from its first bytes until handed over', async (t) => {
  const spool = new PartSpool(t.testdir(), 1000);
  const data = randomBytes(600);
  const part = new GatheredPart(spool, data.length);
  t.equal(spool.held, 0, 'nothing reserved before its bytes come');
  await part.add(data.subarray(0, 250));
  t.equal(spool.held, 600, 'its size reserved');
  await part.add(data.subarray(250));
  t.equal(spool.files, 0, 'no spool file');
  t.ok((await part.whole()).equals(data), 'handed over whole');
  t.equal(spool.held, 0, 'the reservation given back');
  const one = new GatheredPart(spool, 10);
  const chunk = randomBytes(10);
  await one.add(chunk);
  t.equal(await one.whole(), chunk, 'one chunk is handed over as it is, not copied');
  t.equal((await new GatheredPart(spool, 0).whole()).length, 0, 'an empty part');
});

t.test('a gathered part past the cap is spooled, read back whole, and its file closed', async (t) => {
  const dir = t.testdir();
  const spool = new PartSpool(dir, 1000);
  const holding = new GatheredPart(spool, 900);
  await holding.add(randomBytes(10));
  const data = randomBytes(50_000);
  const part = new GatheredPart(spool, data.length);
  for (let offset = 0; offset < data.length; offset += 7_000) await part.add(data.subarray(offset, offset + 7_000));
  t.same([spool.held, spool.files, spool.spooled], [900, 1, 1], 'spooled: the other part holds the memory');
  t.ok((await part.whole()).equals(data), 'read back whole');
  t.equal(spool.files, 0, 'its file closed');
  holding.close();
  holding.close();
  t.equal(spool.held, 0, 'close gives the reservation back, once');
  const dropped = new GatheredPart(new PartSpool(dir, 0), 100);
  await dropped.add(randomBytes(40));
  dropped.close();
  t.same(await readdir(dir), [], 'nothing left in the directory');
});
