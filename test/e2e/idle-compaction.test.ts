/**
 * The started server watches for the end of a busy spell (server/heap-compaction.ts, wired in
 * server/bin/bindle-server.ts): after more requests than an idle interval allows, then none, it
 * decides once whether to compact and logs that (at debug) within two intervals; whether it
 * compacts depends on how much of its heap is unused (unit-tested there). Takes up to a minute.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { IDLE_COMPACTION_MS, IDLE_COMPACTION_QUIET_REQUESTS } from '../../server/heap-compaction.js';
import { startServerProcess } from '../helpers/server-process.js';

t.test('a busy spell, then quiet: one decision, logged', async (t) => {
  const server = await startServerProcess(t, { args: ['--log-level', 'debug'] });
  const body = 'x'.repeat(64 * 1024);
  for (let i = 0; i < 4 * IDLE_COMPACTION_QUIET_REQUESTS; i++) {
    const reply = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body });
    await reply.arrayBuffer();
  }
  const decided = (): string[] => server.output().split('\n').filter((line) => line.includes('idle after a busy spell'));
  for (const deadline = Date.now() + 2 * IDLE_COMPACTION_MS + 30_000; decided().length === 0 && Date.now() < deadline; ) await sleep(250);
  t.equal(decided().length, 1, 'one decision');
  t.match(JSON.parse(decided()[0] ?? '{}'), { level: 20, unusedBytes: Number, compacted: Boolean, ms: Number });
  t.equal(await server.stop(), 0);
});
