/**
 * The bounded reliability suite (issue 11 "Must show"), against the built server process with a
 * fixed seed: kill -9 during creates and uploads, restart, and check through the public API that
 * every invoice `_q` lists is GETtable, every parcel the server has downloads with the right
 * hash, and no temp file is left; same-invoice and same-parcel races have exactly one winner;
 * mutated TOML/JSON invoices and hostile paths never get a 5xx, and every 4xx has an error body.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Invoice, QueryReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signedInvoice, sha256 } from '../helpers/bindles.js';
import { Fuzz, printable } from '../helpers/fuzz.js';
import { vec } from '../helpers/paths.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const KEYRING = vec('scaffolds', 'keys', 'keyring.toml');
const TOML_HEADERS = { 'content-type': 'application/toml' };

function parcelsFor(fuzz: Fuzz, tag: string, count: number): Array<{ name: string; data: Buffer }> {
  return Array.from({ length: count }, (_, i) => {
    const data = Buffer.alloc(16 * 1024 + fuzz.int(256 * 1024));
    for (let j = 0; j < data.length; j += 4096) data.writeUInt32LE(fuzz.int(2 ** 32), j);
    data.write(`${tag}-${i}`);
    return { name: `p${i}.bin`, data };
  });
}

async function post(server: ServerProcess, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<number> {
  try {
    const res = await fetch(`${server.url}${path}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Everything the server lists is consistent: invoices GETtable, stored parcels hash right. */
async function checkConsistency(t: Test, server: ServerProcess): Promise<number> {
  const res = await fetch(`${server.url}_q?l=255&yanked=true`, { headers: { accept: 'application/json' } });
  const reply = (await res.json()) as QueryReply;
  let parcels = 0;
  const problems: string[] = [];
  for (const inv of reply.invoices) {
    const id = `${inv.bindle.name}/${inv.bindle.version}`;
    const got = await fetch(`${server.url}_i/${id}?yanked=true`);
    await got.arrayBuffer();
    if (got.status !== 200) problems.push(`${id}: GET ${got.status}`);
    for (const p of inv.parcel ?? []) {
      const r = await fetch(`${server.url}_i/${id}@${p.label.sha256}?yanked=true`);
      const bytes = Buffer.from(await r.arrayBuffer());
      if (r.status === 404) continue;
      parcels++;
      if (r.status !== 200 || createHash('sha256').update(bytes).digest('hex') !== p.label.sha256) {
        problems.push(`${id}@${p.label.sha256}: ${r.status}, ${bytes.length} bytes`);
      }
    }
  }
  t.same(problems, [], `${reply.invoices.length} invoices and ${parcels} parcels are intact`);
  return reply.invoices.length;
}

t.test('kill -9 during creates and uploads, then restart: what the server lists is intact', async (t) => {
  const fuzz = new Fuzz(0xb1d1e);
  const directory = mkdtempSync(join(tmpdir(), 'bindle-reliability-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  let seen = 0;
  for (let round = 0; round < 3; round++) {
    const server = await startServerProcess(t, { directory, args: ['--keyring', KEYRING] });
    const work = Array.from({ length: 6 }, async (_, i) => {
      const parcels = parcelsFor(fuzz, `r${round}i${i}`, 3);
      const invoice = signedInvoice(`example.com/crash${round}`, `1.0.${i}`, parcels);
      const status = await post(server, '_i', renderInvoice(invoice), TOML_HEADERS);
      if (status !== 202) return;
      await Promise.all(parcels.map((p) => post(server, `_i/example.com/crash${round}/1.0.${i}@${sha256(p.data)}`, p.data)));
    });
    await new Promise((r) => setTimeout(r, 50 + fuzz.int(400)));
    server.child.kill('SIGKILL');
    await Promise.all(work);
    await server.stop();
    // Abandoned uploads are removed by age, never by process id: with a tiny staging age the
    // restart's start-up sweep removes what the killed process left.
    const restarted = await startServerProcess(t, { directory, args: ['--keyring', KEYRING, '--staging-max-age', '1ms'] });
    const count = await checkConsistency(t, restarted);
    t.ok(count >= seen, `round ${round}: no acknowledged invoice was lost (${count} listed)`);
    seen = count;
    t.same(readdirSync(join(directory, 'parcels', '.tmp')), [], `round ${round}: no temp file after a restart that counts them abandoned`);
    await restarted.stop();
  }
});

t.test('races: one winner per invoice and per parcel, the rest 409, data intact', async (t) => {
  const server = await startServerProcess(t, { args: ['--keyring', KEYRING] });
  const data = Buffer.alloc(512 * 1024, 3);
  const invoice: Invoice = signedInvoice('example.com/race', '1.0.0', [{ name: 'r.bin', data }]);
  const creates = await Promise.all(Array.from({ length: 16 }, () => post(server, '_i', renderInvoice(invoice), TOML_HEADERS)));
  t.same([creates.filter((s) => s === 202).length, creates.filter((s) => s === 409).length], [1, 15], `creates: ${creates.join(',')}`);
  const uploads = await Promise.all(Array.from({ length: 16 }, () => post(server, `_i/example.com/race/1.0.0@${sha256(data)}`, data)));
  t.equal(uploads.filter((s) => s === 200).length, 1, `uploads: ${uploads.join(',')}`);
  t.equal(uploads.filter((s) => s === 409).length, 15);
  await checkConsistency(t, server);
});

t.test('mutated invoices and hostile paths (fixed seed): no 5xx, an error body on every 4xx', async (t) => {
  const server = await startServerProcess(t, { args: ['--keyring', KEYRING] });
  const fuzz = new Fuzz(0xf022);
  const base = signedInvoice('example.com/fuzz', '1.0.0', [{ name: 'f.txt', data: Buffer.from('fuzz') }], { description: 'seed' });
  const bad: string[] = [];
  const check = async (what: string, res: Response): Promise<void> => {
    const body = await res.text();
    // A HEAD reply has no body by definition.
    const hasBody = what.startsWith('HEAD ') || /code\s*=\s*"[a-z_]+"|"code":"[a-z_]+"/.test(body);
    if (res.status >= 500 || (res.status >= 400 && !hasBody)) bad.push(`${res.status} ${what}: ${printable(body.slice(0, 200))}`);
  };
  for (let i = 0; i < 150 && bad.length < 5; i++) {
    const format = fuzz.pick(['toml', 'json'] as const);
    const text = fuzz.mutate(renderInvoice(base, format), 1 + fuzz.int(6));
    const res = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': `application/${format}` }, body: text });
    await check(`${format} invoice ${printable(text.slice(0, 120))}`, res);
  }
  const prefixes = ['_i/', '_i/example.com/fuzz/', '_r/missing/', '_q?q=', 'bindle-keys?roles=', ''];
  for (let i = 0; i < 150 && bad.length < 5; i++) {
    const path = fuzz.pick(prefixes) + fuzz.string(24).replace(/[^\x21-\x7e]/gu, (c) => {
      try {
        return encodeURIComponent(c);
      } catch {
        return '%ED%A0%80';
      }
    });
    let url: string;
    try {
      url = new URL(`${server.url}${path}`).href;
    } catch {
      continue;
    }
    const method = fuzz.pick(['GET', 'HEAD', 'POST', 'DELETE']);
    const res = await fetch(url, { method, ...(method === 'POST' ? { body: fuzz.string(40) } : {}) });
    await check(`${method} ${printable(path)}`, res);
  }
  t.same(bad, [], 'no 5xx; every 4xx has an error body');
});
