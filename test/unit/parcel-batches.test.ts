/**
 * client/lib/parcel-batches.ts: batches keep the order and their limits, and a batch body is
 * multipart/form-data that a multipart parser (@fastify/busboy, as the server uses it) reads
 * back part for part, byte for byte.
 */
import { Busboy } from '@fastify/busboy';
import t from 'tap';
import type { Label } from '../../schema/index.js';
import { BATCH_BYTES, BATCH_PARCELS, batchesOf, multipartBody } from '../../client/lib/parcel-batches.js';

const label = (i: number, size: number): { label: Label } => ({ label: { sha256: i.toString(16).padStart(64, '0'), mediaType: 'application/octet-stream', name: `p${i}`, size } });

t.test('batches hold at most BATCH_PARCELS parcels and BATCH_BYTES bytes, in order', async (t) => {
  t.same(batchesOf([], 16), [], 'nothing, no batch');
  const many = Array.from({ length: BATCH_PARCELS * 2 + 1 }, (_, i) => label(i, 10));
  const byCount = batchesOf(many, 1);
  t.same(byCount.map((b) => b.length), [BATCH_PARCELS, BATCH_PARCELS, 1]);
  t.same(byCount.flat(), many, 'the order is kept');
  const big = Math.floor(BATCH_BYTES / 3) + 1;
  const bySize = batchesOf([label(1, big), label(2, big), label(3, big), label(4, BATCH_BYTES * 2), label(5, 1)], 1);
  t.same(bySize.map((b) => b.map((p) => p.label.name)), [['p1', 'p2'], ['p3'], ['p4'], ['p5']], 'a parcel over the byte limit goes alone');
});

t.test('with few parcels, as many batches as transfers side by side', async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => label(i, 10));
  t.same(batchesOf(hundred, 16).map((b) => b.length), [...Array<number>(14).fill(7), 2], '100 parcels for 16 transfers: 15 batches of up to 7');
  t.same(batchesOf(hundred.slice(0, 5), 16).map((b) => b.length), [1, 1, 1, 1, 1], 'fewer parcels than transfers: one each');
  t.equal(batchesOf(Array.from({ length: 5000 }, (_, i) => label(i, 10)), 16).length, Math.ceil(5000 / BATCH_PARCELS), 'many: full batches');
});

t.test('a full batch of the largest parcels read whole has a body under 1 MiB (a common proxy limit)', async (t) => {
  const each = Math.floor(BATCH_BYTES / BATCH_PARCELS);
  const [batch] = batchesOf(Array.from({ length: BATCH_PARCELS }, (_, i) => ({ ...label(i, each), data: Buffer.alloc(each) })), 1);
  if (batch === undefined) throw new Error('one batch expected');
  t.equal(batch.length, BATCH_PARCELS, 'one batch of them all');
  const { body } = multipartBody(batch.map((p) => [p.label.sha256, p.data] as const));
  t.ok(body.length < 1024 * 1024, `${body.length} bytes`);
});

/** The parts of a multipart body as busboy reads them: [name, filename, bytes]. */
function partsOf(body: Buffer, contentType: string): Promise<Array<[string, string, Buffer]>> {
  return new Promise((resolve, reject) => {
    const parts: Array<[string, string, Buffer]> = [];
    const parser = Busboy({ headers: { 'content-type': contentType } });
    parser.on('file', (name, stream, filename) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => parts.push([name, filename, Buffer.concat(chunks)]));
    });
    parser.on('error', reject);
    parser.on('finish', () => resolve(parts));
    parser.end(body);
  });
}

t.test('a batch body reads back, part for part, as file parts', async (t) => {
  const parts = [
    ['a'.repeat(64), Buffer.from('alpha')],
    ['b'.repeat(64), Buffer.alloc(0)],
    ['c'.repeat(64), Buffer.from('\r\n--bindle-\r\n--\r\n binary \0\xff', 'latin1')],
  ] as const;
  const { body, contentType } = multipartBody(parts);
  t.match(contentType, /^multipart\/form-data; boundary=bindle-[0-9a-f]{32}$/);
  const read = await partsOf(body, contentType);
  t.same(read.map(([name, filename]) => [name, filename]), parts.map(([name]) => [name, name]), 'one file part per parcel, in order');
  read.forEach(([name, , data], i) => t.ok(data.equals(parts[i]?.[1] ?? Buffer.alloc(1)), `${name.slice(0, 1)}: the same bytes`));
});
