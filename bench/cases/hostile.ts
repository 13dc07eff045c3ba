/**
 * Benchmark 9 (issue 11 items 5 and 6): `/healthz` latency while the server is under attack.
 * (a) four clients keep posting hostile invoice bodies (977 KiB of nested arrays, 70,000 keys,
 * a 5,000-parcel invoice); (b) 60 concurrent reads with random Basic credentials against an
 * htpasswd file of cost-10 bcrypt; (c) 50 concurrent `_q` reads each answered with a page of
 * 50 invoices of 300 parcels (about 2.7 MB), each read to its end and checked; (d) 8 clients
 * asking `_q` queries that read much of the bench's 100,000-invoice index (one- and two-letter
 * terms, matched by scanning every row; a term every invoice holds; deep offsets), on a second
 * server on a copy of that index, each reply checked. Meanwhile a probe
 * in a process of its own (bench/bin/healthz-probe.ts) asks /healthz in a loop, each time on a
 * new connection; the figure is its p99. (e) STOPPED_READERS clients each ask for a 100 MiB
 * parcel and never read the reply, on a fresh server and beside it on a bare Node server
 * streaming the same file with 1 MiB chunks (the download baseline): the figure is how much the
 * server's RSS grows once they have filled what they will; (f) the same clients asking for the
 * parcel through a batch download, on a fresh server process; (g) STOPPED_UPLOADERS clients
 * each send the first MiB of a 100 MiB parcel and stop, on a fresh server and beside it on the
 * bare Node server that receives uploads with the store's technique (1 MiB write batches, the
 * upload baseline of figure 1c); with postgres+s3 in the run (BINDLE_BENCH_BACKENDS), the same
 * clients again on PostgreSQL + S3, each sending 5 MiB (S3's smallest part) before it stops.
 * BINDLE_BENCH_SERVER_BIN runs the same case against another build (before/after).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { backendSlug, benchBackends, onBackend, withServerOn, type BackendName } from '../lib/backend.js';
import { createInvoice, parcelUrl, signedInvoice, writeKeyring } from '../lib/bindles.js';
import { removeTempDir } from '../lib/cleanup.js';
import type { BenchCase, BenchContext, CaseResult } from '../lib/context.js';
import { expectStatus, httpRequest } from '../lib/http.js';
import { makeFigure } from '../lib/results.js';
import { installIndex } from '../lib/seed.js';
import { memoryOf, spawnBareServer, spawnServer, startHealthProbe, type BenchServer } from '../lib/server.js';
import { MiB, payload, sha256Hex } from '../lib/data.js';
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

/** Queries that read much of the seeded index: short terms are matched by scanning every row, `module` is in every invoice. */
const SCANNING_QUERIES = ['q=a', 'q=e&o=50000', 'q=ko', 'q=module&o=50000', 'q=i&v=%3E%3D1.0.0', 'q=ra&strict=true'];
/** How many clients ask SCANNING_QUERIES at once. */
const SCANNERS = 8;

/**
 * Runs the scanning queries against a server on a copy of the seeded index (anonymous reads),
 * each reply checked: 200 with a total.
 */
async function scanningQueries(ctx: BenchContext): Promise<AttackResult & { invoices: number }> {
  const seeded = await ctx.seededIndex();
  const dir = ctx.dir('hostile-scans');
  writeKeyring(dir, ctx.keys);
  installIndex(seeded.path, dir);
  const server = await spawnServer(dir);
  try {
    const ask = async (i: number): Promise<number> => {
      const url = `${server.api}/_q?${SCANNING_QUERIES[i % SCANNING_QUERIES.length] ?? ''}&l=50`;
      const res = await httpRequest(url);
      if (res.status !== 200 || !/^total = \d+$/m.test(res.body.toString('utf8'))) {
        throw new Error(`${url}: ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
      }
      return res.status;
    };
    for (let i = 0; i < SCANNING_QUERIES.length; i++) await ask(i);
    return { ...(await underAttack(server, SCANNERS, ask)), invoices: ctx.sizes.indexInvoices };
  } finally {
    await server.stop();
    removeTempDir(dir);
  }
}

/** The outcome of one attack phase: the probe's /healthz p99 and what the attackers got. */
interface AttackResult {
  p99: number;
  attacks: number;
  /** Replies by status, e.g. "400×12, 413×3". */
  statuses: string;
}

/**
 * Runs `attackers` loops of `attack` for ATTACK_MS while a /healthz probe runs in a process of
 * its own (the attackers' work in this process cannot delay it); `attack` resolves with the
 * status it got and throws when the reply is wrong.
 */
async function underAttack(server: BenchServer, attackers: number, attack: (i: number) => Promise<number>): Promise<AttackResult> {
  let stop = false;
  let attacks = 0;
  const statuses = new Map<number, number>();
  const probe = startHealthProbe(server.origin);
  const workers = Array.from({ length: attackers }, async (_, w) => {
    for (let i = w; !stop; i += attackers) {
      const status = await attack(i);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      attacks += 1;
    }
  });
  const attacked = Promise.all(workers);
  await Promise.race([attacked, new Promise((resolve) => setTimeout(resolve, ATTACK_MS))]);
  stop = true;
  const [{ latencies, failures }] = await Promise.all([probe.stop(), attacked]);
  if (failures.length > 0) throw new Error(`/healthz failed ${failures.length} times under attack: ${failures.slice(0, 5).join('; ')}`);
  if (latencies.length === 0) throw new Error('/healthz never answered under attack');
  const tally = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`).join(', ');
  return { p99: percentile(latencies, 99), attacks, statuses: tally };
}

/**
 * A reader of the large `_q` page: reads each reply to its end and checks it against `expected`
 * (the page read before the attack): status 200, as many bytes as Content-Length says, and the
 * same invoices byte for byte (only the page's timestamp before them may differ).
 */
function largePageReader(url: string, authorization: string, expected: Buffer): () => Promise<number> {
  const start = expected.indexOf('[[invoices]]');
  return async () => {
    const res = await httpRequest(url, { headers: { authorization } });
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
    if (res.body.length !== Number(res.headers['content-length'])) {
      throw new Error(`${url}: ${res.body.length} bytes read, Content-Length ${String(res.headers['content-length'])}`);
    }
    if (res.body.length !== expected.length || !res.body.subarray(res.body.indexOf('[[invoices]]')).equals(expected.subarray(start))) {
      throw new Error(`${url}: the reply differs from the page read before the attack`);
    }
    return res.status;
  };
}

/** Clients of figure 9e: each asks for the big parcel and never reads. */
const STOPPED_READERS = 200;
/** The parcel they ask for: bigger than what the kernel's socket buffers take on loopback. */
const STOPPED_PARCEL_BYTES = 100 << 20;

/**
 * Opens STOPPED_READERS connections to `url`, each sending one GET and never reading, and
 * returns how much process `pid`'s RSS has grown once it settles, and how many connections were
 * still open then (stoppedClients).
 */
function stoppedReaders(url: string, pid: number): Promise<{ growth: number; open: number }> {
  const target = new URL(url);
  return stoppedClients(target, pid, STOPPED_READERS, () => [`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`]);
}

/** Clients of figure 9g: each sends the start of an upload and stops. */
const STOPPED_UPLOADERS = 400;
/** The size each of them declares. */
const STOPPED_UPLOAD_DECLARED = 100 << 20;
/** What each of them sends before it stops: just under the 1 MiB a write batch of the store holds. */
const STOPPED_UPLOAD_SENT = MiB - 1024;
/** What each sends on PostgreSQL + S3: 5 MiB, the smallest part S3 takes, so a part's worth each. */
const STOPPED_S3_UPLOAD_SENT = 5 * MiB;

/**
 * Opens STOPPED_UPLOADERS connections, the i-th POSTing to `path(i)` of `origin` a body
 * declared STOPPED_UPLOAD_DECLARED bytes long, sending `sent` bytes of it and then nothing;
 * returns process `pid`'s RSS growth once it settles (stoppedClients).
 */
function stoppedUploaders(origin: string, pid: number, sent: number, path: (i: number) => string): Promise<{ growth: number; open: number }> {
  const target = new URL(origin);
  const body = randomBytes(sent);
  return stoppedClients(target, pid, STOPPED_UPLOADERS, (i) => [
    `POST ${path(i)} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${STOPPED_UPLOAD_DECLARED}\r\n\r\n`,
    body,
  ]);
}

/**
 * Opens `count` connections to `target`'s host and port, the i-th sending `request(i)` and
 * then neither sending nor reading, and returns how much process `pid`'s RSS has grown once it
 * settles (no growth over 1 MiB for 2 s, at most 30 s), and how many connections were still open
 * then. Closes them all before returning.
 */
async function stoppedClients(target: URL, pid: number, count: number, request: (i: number) => Array<string | Buffer>): Promise<{ growth: number; open: number }> {
  const rss = (): number => memoryOf(pid)?.rss ?? Number.NaN;
  const before = rss();
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const socket = connect(Number(target.port), target.hostname);
      socket.on('error', () => undefined);
      for (const part of request(i)) socket.write(part);
      socket.pause();
      sockets.push(socket);
    }
    let last = rss();
    let quietSince = Date.now();
    for (const started = Date.now(); Date.now() - started < 30_000 && Date.now() - quietSince < 2000; ) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const now = rss();
      if (now - last > MiB) {
        last = now;
        quietSince = Date.now();
      }
    }
    return { growth: rss() - before, open: sockets.filter((socket) => !socket.destroyed).length };
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}

/**
 * Figures 9e and 9f: the server's RSS growth under the stopped readers of a single parcel GET,
 * then (a fresh process on the same data, so that the first attack's memory is not reused) of a
 * batch download of the same parcel; and the bare Node server's under the same clients.
 */
async function stoppedReaderRuns(ctx: BenchContext): Promise<{ ours: number; batch: number; bare: number; notes: string[] }> {
  const dir = ctx.dir('hostile-stopped-readers');
  const serverDir = join(dir, 'server');
  mkdirSync(serverDir);
  writeKeyring(serverDir, ctx.keys);
  const data = payload(STOPPED_PARCEL_BYTES, 9_000_001);
  const sha256 = sha256Hex(data);
  const file = join(dir, 'parcel.bin');
  writeFileSync(file, data);
  const name = 'bench.example.com/stopped-readers';
  try {
    let server = await spawnServer(serverDir);
    let ours: { growth: number; open: number };
    try {
      await createInvoice(server.api, signedInvoice(ctx.keys, name, '1.0.0', [
        { sha256, size: data.length, mediaType: 'application/octet-stream', name: 'parcel.bin' },
      ]));
      const url = parcelUrl(server.api, name, '1.0.0', sha256);
      await expectStatus(200, url, { method: 'POST', body: data });
      ours = await stoppedReaders(url, server.pid);
    } finally {
      await server.stop();
    }
    server = await spawnServer(serverDir);
    let batch: { growth: number; open: number };
    let healthy: number;
    try {
      const batchUrl = `${server.api}/_i/${name}/1.0.0?parcels=${sha256}`;
      // Checked after the attack: a download before it would leave the server's RSS grown.
      batch = await stoppedReaders(batchUrl, server.pid);
      const whole = await expectStatus(200, batchUrl);
      if (!whole.body.includes(data)) throw new Error(`${batchUrl}: the parcel's bytes are not in the body`);
      healthy = (await expectStatus(200, `${server.origin}/healthz`)).status;
    } finally {
      await server.stop();
    }
    const bare = await spawnBareServer({ kind: 'file', path: file });
    try {
      const baseline = await stoppedReaders(`${bare.origin}/`, bare.pid);
      ctx.log(`  stopped readers: RSS +${(ours.growth / MiB).toFixed(0)} MiB (${ours.open} open), of a batch download +${(batch.growth / MiB).toFixed(0)} MiB (${batch.open} open), bare Node +${(baseline.growth / MiB).toFixed(0)} MiB (${baseline.open} open)`);
      return {
        ours: ours.growth / MiB,
        batch: batch.growth / MiB,
        bare: baseline.growth / MiB,
        notes: [
          `${STOPPED_READERS} connections, each a GET of a ${STOPPED_PARCEL_BYTES / MiB} MiB parcel, never read; RSS read once it grew by no more than 1 MiB over 2 s; still open then: ${ours.open} (server), ${baseline.open} (bare Node)`,
          `batch download: the same clients asking for the parcel through \`GET /v1/_i/{name}/{version}?parcels=<sha256>\`, a fresh server process on the same data; still open then: ${batch.open}; /healthz afterwards: ${healthy}`,
        ],
      };
    } finally {
      await bare.stop();
    }
  } finally {
    removeTempDir(dir);
  }
}

/**
 * Figure 9g: the server's RSS growth under the stopped uploaders, each sending `sent` bytes (a
 * fresh server on `backend` given an invoice of their parcels), then the bare Node upload
 * server's under the same clients; and /healthz on the server after them.
 */
async function stoppedUploaderRuns(ctx: BenchContext, backend: BackendName, sent: number): Promise<{ ours: number; bare: number; notes: string[] }> {
  const dir = ctx.dir(`hostile-stopped-uploaders-${backendSlug(backend)}`);
  const serverDir = join(dir, 'server');
  const bareDir = join(dir, 'bare');
  mkdirSync(serverDir);
  mkdirSync(bareDir);
  writeKeyring(serverDir, ctx.keys);
  const name = 'bench.example.com/stopped-uploaders';
  const digests = Array.from({ length: STOPPED_UPLOADERS }, () => randomBytes(32).toString('hex'));
  try {
    const { ours, healthy } = await withServerOn(backend, serverDir, async (server) => {
      await createInvoice(server.api, signedInvoice(ctx.keys, name, '1.0.0', digests.map((sha256, i) => (
        { sha256, size: STOPPED_UPLOAD_DECLARED, mediaType: 'application/octet-stream', name: `part-${i}.bin` }
      ))));
      const growth = await stoppedUploaders(server.origin, server.pid, sent, (i) => new URL(parcelUrl(server.api, name, '1.0.0', digests[i] ?? '')).pathname);
      return { ours: growth, healthy: (await expectStatus(200, `${server.origin}/healthz`)).status };
    });
    const bare = await spawnBareServer({ kind: 'sink', dir: bareDir });
    try {
      const baseline = await stoppedUploaders(bare.origin, bare.pid, sent, (i) => `/upload-${i}`);
      ctx.log(`  stopped uploaders [${backend}]: RSS +${(ours.growth / MiB).toFixed(0)} MiB (${ours.open} open), bare Node +${(baseline.growth / MiB).toFixed(0)} MiB (${baseline.open} open)`);
      return {
        ours: ours.growth / MiB,
        bare: baseline.growth / MiB,
        notes: [
          `${STOPPED_UPLOADERS} connections, each a POST of a parcel declared ${STOPPED_UPLOAD_DECLARED / MiB} MiB sending ${sent} bytes, then nothing; RSS read once it grew by no more than 1 MiB over 2 s; still open then: ${ours.open} (server), ${baseline.open} (bare Node); /healthz afterwards: ${healthy}`,
        ],
      };
    } finally {
      await bare.stop();
    }
  } finally {
    removeTempDir(dir);
  }
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
      const bodiesResult = await underAttack(server, 4, async (i) => {
        const res = await httpRequest(`${server.api}/_i`, {
          method: 'POST', headers: { 'content-type': 'application/toml', authorization: admin },
          body: Buffer.from(bodies[i % bodies.length] ?? ''),
        });
        return res.status;
      });
      ctx.log(`  hostile bodies: /healthz p99 ${bodiesResult.p99.toFixed(1)} ms (${bodiesResult.attacks} bodies posted: ${bodiesResult.statuses})`);
      await seedLargeInvoices(ctx, server.api, admin);
      const pageUrl = `${server.api}/_q?q=large&l=50`;
      const page = await expectStatus(200, pageUrl, { headers: { authorization: admin } });
      const invoices = page.body.toString('utf8').split('\n[[invoices]]\n').length - 1;
      if (invoices !== 50) throw new Error(`${pageUrl}: ${invoices} invoices in the page, not 50`);
      const queryResult = await underAttack(server, 50, largePageReader(pageUrl, admin, page.body));
      ctx.log(`  large _q replies: /healthz p99 ${queryResult.p99.toFixed(1)} ms (${queryResult.attacks} replies of ${page.body.length} bytes, each checked)`);
      // Last: the flood locks this address out of authenticated requests for a while.
      const floodResult = await underAttack(server, 60, async (i) => {
        const res = await httpRequest(`${server.api}/_q`, { headers: { authorization: `Basic ${Buffer.from(`user${i}:guess${Math.random()}`).toString('base64')}` } });
        return res.status;
      });
      ctx.log(`  credential flood: /healthz p99 ${floodResult.p99.toFixed(1)} ms (${floodResult.attacks} bad-credential reads: ${floodResult.statuses})`);
      const stopped = await stoppedReaderRuns(ctx);
      const uploaders = await stoppedUploaderRuns(ctx, 'sqlite+file', STOPPED_UPLOAD_SENT);
      const s3Uploaders = benchBackends().includes('postgres+s3') ? await stoppedUploaderRuns(ctx, 'postgres+s3', STOPPED_S3_UPLOAD_SENT) : undefined;
      const scanResult = await scanningQueries(ctx);
      ctx.log(`  scanning _q queries: /healthz p99 ${scanResult.p99.toFixed(1)} ms (${scanResult.attacks} queries: ${scanResult.statuses})`);
      return {
        figures: [
          makeFigure({
            id: 'healthz-hostile-bodies', title: '9a. /healthz p99 while hostile invoice bodies are posted', unit: 'ms',
            runs: [bodiesResult.p99], target: { on: 'value', op: '<=', bound: 50, text: '≤ 50 ms' },
            notes: [`${ATTACK_MS / 1000} s, 4 posters cycling 977 KiB nested arrays, 70,000 keys, a 5,000-parcel invoice: ${bodiesResult.attacks} bodies (${bodiesResult.statuses}); probe in its own process`],
          }),
          makeFigure({
            id: 'healthz-credential-flood', title: '9b. /healthz p99 during 60 concurrent bad-credential reads', unit: 'ms',
            runs: [floodResult.p99], target: { on: 'value', op: '<=', bound: 100, text: '≤ 100 ms' },
            notes: [`${ATTACK_MS / 1000} s, cost-10 bcrypt htpasswd: ${floodResult.attacks} bad-credential reads (${floodResult.statuses}); probe in its own process`],
          }),
          makeFigure({
            id: 'healthz-large-queries', title: '9c. /healthz p99 during 50 concurrent _q reads of ~2 MiB replies', unit: 'ms',
            runs: [queryResult.p99], target: { on: 'value', op: '<=', bound: 50, text: '≤ 50 ms' },
            notes: [`${ATTACK_MS / 1000} s, 50 readers of a 50-invoice page (300 parcels each, ${page.body.length} bytes): ${queryResult.attacks} replies, each read to its end and checked; probe in its own process`],
          }),
          makeFigure({
            id: 'healthz-scanning-queries', title: `9d. /healthz p99 during ${SCANNERS} concurrent _q queries that read much of a ${scanResult.invoices.toLocaleString('en-US')}-invoice index`, unit: 'ms',
            runs: [scanResult.p99], target: { on: 'value', op: '<=', bound: 50, text: '≤ 50 ms' },
            notes: [`${ATTACK_MS / 1000} s, ${SCANNERS} clients cycling ${SCANNING_QUERIES.map((q) => `\`${q}\``).join(', ')} (50 per page): ${scanResult.attacks} queries (${scanResult.statuses}), each checked; probe in its own process`],
          }),
          makeFigure({
            id: 'rss-stopped-readers', title: `9e. Server RSS growth while ${STOPPED_READERS} clients stop reading a ${STOPPED_PARCEL_BYTES / MiB} MiB download`, unit: 'MiB',
            runs: [stopped.ours],
            baseline: { title: 'bare Node http streaming the same file (1 MiB chunks), the same clients', runs: [stopped.bare] },
            target: { on: 'value', op: '<=', bound: 192, text: '≤ 192 MiB (the 128 MiB read buffer budget and the connections)' },
            notes: stopped.notes.slice(0, 1),
          }),
          makeFigure({
            id: 'rss-stopped-batch-readers', title: `9f. Server RSS growth while ${STOPPED_READERS} clients stop reading a batch download of the same parcel`, unit: 'MiB',
            runs: [stopped.batch],
            baseline: { title: 'bare Node http streaming the same file (1 MiB chunks), the same clients', runs: [stopped.bare] },
            target: { on: 'value', op: '<=', bound: 192, text: '≤ 192 MiB (as 9e)' },
            notes: stopped.notes.slice(1),
          }),
          makeFigure({
            id: 'rss-stopped-uploaders', title: `9g. Server RSS growth while ${STOPPED_UPLOADERS} clients stop part-way through uploads`, unit: 'MiB',
            runs: [uploaders.ours],
            baseline: { title: 'bare Node http receiving uploads in 1 MiB write batches (figure 1c\'s), the same clients', runs: [uploaders.bare] },
            target: { on: 'value', op: '<=', bound: 192, text: '≤ 192 MiB (the 128 MiB upload budget and the connections)' },
            notes: uploaders.notes,
          }),
          ...(s3Uploaders === undefined ? [] : [makeFigure({
            ...onBackend('postgres+s3', 'rss-stopped-uploaders', `9g. Server RSS growth while ${STOPPED_UPLOADERS} clients stop part-way through uploads, after ${STOPPED_S3_UPLOAD_SENT / MiB} MiB each`),
            unit: 'MiB',
            runs: [s3Uploaders.ours],
            baseline: { title: 'bare Node http receiving uploads in 1 MiB write batches (figure 1c\'s), the same clients', runs: [s3Uploaders.bare] },
            target: { on: 'value', op: '<=', bound: 320, text: '≤ 320 MiB (the 128 MiB memory cap of S3 parts being filled, the upload budget and the connections)' },
            notes: s3Uploaders.notes,
          })]),
        ],
      };
    } finally {
      await server.stop();
      removeTempDir(dir);
    }
  },
};
