/**
 * Benchmark 9 (issue 11 items 5 and 6): `/healthz` latency while the server is under attack.
 * (a) four clients keep posting hostile invoice bodies (977 KiB of nested arrays, 70,000 keys,
 * a 5,000-parcel invoice); (b) 60 concurrent reads with random Basic credentials against an
 * htpasswd file of cost-10 bcrypt; (c) 50 concurrent `_q` reads each answered with a page of
 * 50 invoices of 300 parcels (about 2 MiB). Meanwhile one client asks /healthz in a loop; the
 * figure is its p99. BINDLE_BENCH_SERVER_BIN runs the same case against another build (before/after).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice, writeKeyring } from '../lib/bindles.js';
import { removeTempDir } from '../lib/cleanup.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { expectStatus, httpRequest } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { spawnServer, type BenchServer } from '../lib/server.js';
import { percentile } from '../lib/stats.js';

const ATTACK_MS = 15_000;

function hostileBodies(): string[] {
  const depth = Math.floor((977 * 1024 - 10) / 2);
  let keys = '';
  for (let i = 0; i < 70_000; i++) keys += `k${i} = ${i}\n`;
  let invoice = 'bindleVersion = "1.0.0"\n[bindle]\nname = "example.com/x"\nversion = "1.0.0"\n';
  for (let i = 0; i < 5000; i++) {
    invoice += `[[parcel]]\n[parcel.label]\nsha256 = "${i.toString(16).padStart(64, '0')}"\nmediaType = "text/plain"\nname = "f${i}.txt"\nsize = ${i}\n`;
  }
  return [`a = ${'['.repeat(depth)}${']'.repeat(depth)}\n`, keys, invoice];
}

/** Creates 50 invoices of 300 parcels each (about 40 KiB each as TOML), so that a `_q` page of 50 is about 2 MiB. */
async function seedLargeInvoices(ctx: BenchContext, api: string, authorization: string): Promise<void> {
  for (let v = 0; v < 50; v++) {
    const labels = Array.from({ length: 300 }, (_, i) => ({
      sha256: (v * 1000 + i).toString(16).padStart(64, '0'), mediaType: 'text/plain', name: `file-${i}.txt`, size: i,
    }));
    await expectStatus([201, 202], `${api}/_i`, {
      method: 'POST', headers: { 'content-type': 'application/toml', authorization },
      body: renderInvoice(signedInvoice(ctx.keys, 'example.com/large', `1.0.${v}`, labels), 'toml'),
    });
  }
}

/** Asks /healthz one request at a time until `stop()`; returns the latencies in ms. */
async function probeHealth(server: BenchServer, stopped: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  while (!stopped()) {
    const t0 = performance.now();
    const res = await httpRequest(`${server.origin}/healthz`);
    latencies.push(performance.now() - t0);
    if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return latencies;
}

async function underAttack(server: BenchServer, attackers: number, attack: (i: number) => Promise<unknown>): Promise<{ p99: number; attacks: number }> {
  let stop = false;
  let attacks = 0;
  const workers = Array.from({ length: attackers }, async (_, w) => {
    for (let i = w; !stop; i += attackers) {
      await attack(i);
      attacks += 1;
    }
  });
  const probe = probeHealth(server, () => stop);
  await new Promise((resolve) => setTimeout(resolve, ATTACK_MS));
  stop = true;
  const latencies = await probe;
  await Promise.all(workers);
  return { p99: percentile(latencies, 99), attacks };
}

export const hostileCase: BenchCase = {
  name: 'hostile',
  title: '/healthz p99 under hostile bodies and a credential flood',
  async run(ctx: BenchContext): Promise<CaseResult> {
    const bodies = hostileBodies();
    const dir = ctx.dir('hostile');
    writeKeyring(dir, ctx.keys);
    const htpasswd = join(dir, 'htpasswd');
    writeFileSync(htpasswd, `admin:${bcrypt.hashSync('the real password', 10)}\n`);
    const server = await spawnServer(dir, ['--htpasswd-file', htpasswd]);
    const admin = `Basic ${Buffer.from('admin:the real password').toString('base64')}`;
    try {
      const bodiesResult = await underAttack(server, 4, (i) =>
        httpRequest(`${server.api}/_i`, {
          method: 'POST', headers: { 'content-type': 'application/toml', authorization: admin },
          body: Buffer.from(bodies[i % bodies.length] ?? ''),
        }));
      ctx.log(`  hostile bodies: /healthz p99 ${bodiesResult.p99.toFixed(1)} ms (${bodiesResult.attacks} bodies posted)`);
      await seedLargeInvoices(ctx, server.api, admin);
      const queryResult = await underAttack(server, 50, () =>
        httpRequest(`${server.api}/_q?q=large&l=50`, { headers: { authorization: admin } }));
      ctx.log(`  large _q replies: /healthz p99 ${queryResult.p99.toFixed(1)} ms (${queryResult.attacks} replies of ~2 MiB)`);
      // Last: the flood locks this address out of authenticated requests for a while.
      const floodResult = await underAttack(server, 60, (i) =>
        httpRequest(`${server.api}/_q`, { headers: { authorization: `Basic ${Buffer.from(`user${i}:guess${Math.random()}`).toString('base64')}` } }));
      ctx.log(`  credential flood: /healthz p99 ${floodResult.p99.toFixed(1)} ms (${floodResult.attacks} bad-credential reads)`);
      return {
        figures: [
          makeFigure({
            id: 'healthz-hostile-bodies', title: '9a. /healthz p99 while hostile invoice bodies are posted', unit: 'ms',
            runs: [bodiesResult.p99], target: { on: 'value', op: '<=', bound: 50, text: '≤ 50 ms' },
            notes: [`${ATTACK_MS / 1000} s, 4 posters cycling 977 KiB nested arrays, 70,000 keys, a 5,000-parcel invoice: ${bodiesResult.attacks} bodies`],
          }),
          makeFigure({
            id: 'healthz-credential-flood', title: '9b. /healthz p99 during 60 concurrent bad-credential reads', unit: 'ms',
            runs: [floodResult.p99], target: { on: 'value', op: '<=', bound: 100, text: '≤ 100 ms' },
            notes: [`${ATTACK_MS / 1000} s, cost-10 bcrypt htpasswd: ${floodResult.attacks} bad-credential reads`],
          }),
          makeFigure({
            id: 'healthz-large-queries', title: '9c. /healthz p99 during 50 concurrent _q reads of ~2 MiB replies', unit: 'ms',
            runs: [queryResult.p99], target: { on: 'value', op: '<=', bound: 50, text: '≤ 50 ms' },
            notes: [`${ATTACK_MS / 1000} s, 50 readers of a 50-invoice page (300 parcels each): ${queryResult.attacks} replies`],
          }),
        ],
      };
    } finally {
      await server.stop();
      removeTempDir(dir);
    }
  },
};
