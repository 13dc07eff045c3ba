/**
 * Long local steps of standalone bindles report their progress: reading one hashes every parcel
 * file (onHashing), exporting one compresses it (onCompressing); both count up to a total that
 * they reach exactly once, at the end. The exported tarball reads back whole.
 */
import t from 'tap';
import { join } from 'node:path';
import { exportTarball, readStandalone, writeStandalone, type StepProgress } from '../../client/standalone/standalone-bindle.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';

/** Records the calls of a StepProgress. */
function recorder(): { calls: Array<[number, number]>; progress: StepProgress } {
  const calls: Array<[number, number]> = [];
  return { calls, progress: (done, total) => calls.push([done, total]) };
}

t.test('reading and exporting a standalone bindle report hashing and compressing', async (t) => {
  const dir = t.testdir();
  const parcels: TestParcel[] = [
    { name: 'big.bin', data: Buffer.alloc(3 << 20, 7) },
    { name: 'small.txt', data: Buffer.from('small\n') },
  ];
  const invoice = signedInvoice('example.com/steps', '1.0.0', parcels);
  const root = await writeStandalone(join(dir, 'bindles'), invoice, new Map(parcels.map((p) => [sha256(p.data), p.data])));
  const total = parcels.reduce((n, p) => n + p.data.length, 0);

  const hashing = recorder();
  const bindle = await readStandalone(root, { onHashing: hashing.progress });
  t.equal(bindle.parcels.size, 2);
  t.ok(hashing.calls.length >= 4, `${hashing.calls.length} reports: one per chunk and one at the end`);
  t.ok(hashing.calls.every(([, of]) => of === total), 'the total is the parcel files\' size');
  t.ok(hashing.calls.every(([done], i) => i === 0 || done >= (hashing.calls[i - 1]?.[0] ?? 0)), 'counts only go up');
  t.same(hashing.calls.at(-1), [total, total], 'the last report is the total');
  t.equal(hashing.calls.filter(([done]) => done === total).length <= 2, true, 'the total is reached at the end only');

  const compressing = recorder();
  const tarball = await exportTarball(root, join(dir, 'out'), { onCompressing: compressing.progress });
  const last = compressing.calls.at(-1);
  t.ok(compressing.calls.length >= 2 && last !== undefined && last[0] === last[1], 'compressing counts up to its total');
  t.ok(compressing.calls.slice(0, -1).every(([done, of]) => done < of), 'and reaches it only at the end');
  const back = await readStandalone(tarball);
  t.teardown(() => back.cleanup());
  t.same([...back.parcels.keys()].sort(), parcels.map((p) => sha256(p.data)).sort(), 'the tarball reads back whole');
});
