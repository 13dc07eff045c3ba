/**
 * client/lib/parcel-batches.ts: batches keep the order and their limits, and a full batch's
 * body stays under 1 MiB.
 */
import t from 'tap';
import type { Label } from '../../schema/index.js';
import { BATCH_BYTES, BATCH_PARCELS, batchesOf } from '../../client/lib/parcel-batches.js';
import { formBody } from '../../core/codec/multipart-form.js';

const sizeOf = (p: { label: Label }): number => p.label.size;
const label = (i: number, size: number): { label: Label } => ({ label: { sha256: i.toString(16).padStart(64, '0'), mediaType: 'application/octet-stream', name: `p${i}`, size } });

t.test('batches hold at most BATCH_PARCELS parcels and BATCH_BYTES bytes, in order', async (t) => {
  t.same(batchesOf([], 16, sizeOf), [], 'nothing, no batch');
  const many = Array.from({ length: BATCH_PARCELS * 2 + 1 }, (_, i) => label(i, 10));
  const byCount = batchesOf(many, 1, sizeOf);
  t.same(byCount.map((b) => b.length), [BATCH_PARCELS, BATCH_PARCELS, 1]);
  t.same(byCount.flat(), many, 'the order is kept');
  const big = Math.floor(BATCH_BYTES / 3) + 1;
  const bySize = batchesOf([label(1, big), label(2, big), label(3, big), label(4, BATCH_BYTES * 2), label(5, 1)], 1, sizeOf);
  t.same(bySize.map((b) => b.map((p) => p.label.name)), [['p1', 'p2'], ['p3'], ['p4'], ['p5']], 'a parcel over the byte limit goes alone');
});

t.test('with few parcels, as many batches as transfers side by side', async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => label(i, 10));
  t.same(batchesOf(hundred, 16, sizeOf).map((b) => b.length), [...Array<number>(14).fill(7), 2], '100 parcels for 16 transfers: 15 batches of up to 7');
  t.same(batchesOf(hundred.slice(0, 5), 16, sizeOf).map((b) => b.length), [1, 1, 1, 1, 1], 'fewer parcels than transfers: one each');
  t.equal(batchesOf(Array.from({ length: 5000 }, (_, i) => label(i, 10)), 16, sizeOf).length, Math.ceil(5000 / BATCH_PARCELS), 'many: full batches');
});

t.test('a full batch of the largest parcels read whole has a body under 1 MiB (a common proxy limit)', async (t) => {
  const each = Math.floor(BATCH_BYTES / BATCH_PARCELS);
  const [batch] = batchesOf(Array.from({ length: BATCH_PARCELS }, (_, i) => ({ ...label(i, each), data: Buffer.alloc(each) })), 1, sizeOf);
  if (batch === undefined) throw new Error('one batch expected');
  t.equal(batch.length, BATCH_PARCELS, 'one batch of them all');
  const { body } = formBody(batch.map((p) => ({ name: p.label.sha256, filename: p.label.sha256, mediaType: 'application/octet-stream', data: p.data })));
  t.ok(body.length < 1024 * 1024, `${body.length} bytes`);
});
