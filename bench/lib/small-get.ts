/**
 * The setup the small-GET benchmarks share (a 1 KiB parcel, a small invoice): a bindle-server
 * holding what is to be fetched, the same bytes in a file, the strongest baselines serving that
 * file (bare Node from memory, nginx, the registry, when installed), each checked to answer the
 * same bytes before anything is measured; all stopped afterwards, whatever happens.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withServerOn, type BackendName } from './backend.js';
import { servePeers, type Peer } from './baselines.js';
import { writeKeyring } from './bindles.js';
import type { BenchContext } from './context.js';
import { sha256Hex } from './data.js';
import { expectStatus } from './http.js';
import type { BenchServer } from './server.js';

/** What bindle-server serves at `url`: these bytes, with this content type for the baselines. */
export interface SmallTarget {
  url: string;
  body: Buffer;
  contentType: string;
}

/** A running comparison: the server, its target, the baselines and notes on those missing. */
export interface SmallGetRun {
  server: BenchServer;
  target: SmallTarget;
  peers: Peer[];
  notes: string[];
  /** Where load-generator scripts go. */
  scripts: string;
}

/**
 * Starts bindle-server in `ctx.dir(name)` on fresh storage of `backend`, lets `seed` store what
 * is to be fetched, starts the baselines on the same bytes, runs `body`, and stops everything.
 */
export async function withSmallGet<T>(
  ctx: BenchContext,
  name: string,
  seed: (server: BenchServer, dir: string) => Promise<SmallTarget>,
  body: (run: SmallGetRun) => Promise<T>,
  backend: BackendName = 'sqlite+file',
): Promise<T> {
  const dir = ctx.dir(name);
  writeKeyring(dir, ctx.keys);
  return withServerOn(backend, dir, async (server) => {
    const target = await seed(server, dir);
    const file = join(ctx.dir(`${name}-file`), 'served.bin');
    writeFileSync(file, target.body);
    const check = async (peer: string, url: string): Promise<void> => {
      if (!(await expectStatus(200, url)).body.equals(target.body)) throw new Error(`${peer} does not answer the same bytes`);
    };
    await check('bindle-server', target.url);
    const { peers, notes } = await servePeers(
      ctx.workRoot,
      { path: file, sha256: sha256Hex(target.body), size: target.body.length, contentType: target.contentType, bare: 'bytes' },
      check,
    );
    try {
      return await body({ server, target, peers, notes, scripts: ctx.dir('wrk') });
    } finally {
      await Promise.all(peers.map((p) => p.stop()));
    }
  });
}
