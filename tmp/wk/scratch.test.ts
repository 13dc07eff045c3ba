import t from 'tap';
import { Worker } from 'node:worker_threads';
t.test('worker', async (t) => {
  const url = new URL('./w.js', import.meta.url);
  const w = new Worker(url, { workerData: { n: 21 } });
  const v = await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); });
  t.equal(v, 42);
  await w.terminate();
});
