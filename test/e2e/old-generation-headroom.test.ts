/**
 * A fresh server streaming large uploads is not collected whole again and again
 * (server/old-generation-headroom.ts): V8 counts every socket read's buffer against the old
 * generation's limit until the next scavenge frees it, and a fresh server's heap, compacted at
 * start, left too little room for that: ~3.5 full collections per 100 MiB uploaded. Counted with
 * V8's `--trace-gc`, on the built server without tap's preload (whose heap would hide it).
 */
import t from 'tap';
import { createBenchKeys, createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../../bench/lib/bindles.js';
import { MiB, payload, sha256Hex, slices } from '../../bench/lib/data.js';
import { uploadChunks } from '../../bench/lib/http.js';
import { startServerProcess } from '../helpers/server-process.js';

t.test('four 64 MiB uploads to a fresh server take at most two full collections', async (t) => {
  const directory = t.testdir();
  const keys = createBenchKeys();
  writeKeyring(directory, keys);
  const server = await startServerProcess(t, { directory, withoutPreload: true, nodeArgs: ['--trace-gc'] });
  const api = `${server.origin}/v1`;
  const before = (server.output().match(/Mark-Compact/g) ?? []).length;
  for (let i = 0; i < 4; i++) {
    const data = payload(64 * MiB, i + 1);
    const sha256 = sha256Hex(data);
    await createInvoice(api, signedInvoice(keys, 'gc.example.com/upload', `1.0.${i}`, [{ sha256, size: data.length, mediaType: 'application/octet-stream', name: 'p.bin' }]));
    const result = await uploadChunks(parcelUrl(api, 'gc.example.com/upload', `1.0.${i}`, sha256), data.length, slices(data));
    t.equal(result.status, 200, `upload ${i + 1} stored`);
  }
  t.equal(await server.stop(), 0, 'it stops cleanly');
  const during = (server.output().match(/Mark-Compact/g) ?? []).length - before;
  t.ok(during <= 2, `${during} full collections during 256 MiB of uploads (9 or more without the headroom)`);
});
