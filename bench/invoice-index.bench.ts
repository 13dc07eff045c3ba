/**
 * Hand-run benchmark of the SQLite invoice index: seeds N invoices (default 100,000) into a
 * temp directory through the public insert(), then times `/_q`-style queries (p50/p99 per
 * query shape). Run: npx tsx bench/invoice-index.bench.ts [count] [queries-per-shape] [keep-db-path]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Invoice } from '../schema/index.js';
import { renderInvoice } from '../core/codec/invoice-codec.js';
import { canonicalId } from '../core/ids/bindle-id.js';
import type { InvoiceQuery, StoredInvoice } from '../server/storage/invoice-index.js';
import { SqliteInvoiceIndex } from '../server/storage/sqlite-invoice-index.js';

const WORDS = [
  'alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima',
  'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo', 'sierra', 'tango', 'uniform', 'victor', 'whiskey',
  'xray', 'yankee', 'zulu', 'warp', 'core', 'shuttle', 'phaser', 'deflector', 'nacelle', 'tricorder',
];
const PEOPLE = ['Montgomery Scott', 'Geordi La Forge', 'Miles OBrien', 'BElanna Torres', 'Kathryn Janeway', 'Jean-Luc Picard'];

function word(i: number): string {
  return WORDS[i % WORDS.length] ?? 'x';
}

function sha(i: number, j: number): string {
  return createHash('sha256').update(`${i}/${j}`).digest('hex');
}

/** The name of bindle n (every name has 5 versions: invoices 5n to 5n + 4). */
function bindleName(n: number): string {
  return `${word(n)}.example.com/${word(n * 7 + 3)}-${word(n * 13 + 5)}/${n}`;
}

function entry(i: number): StoredInvoice {
  const n = Math.floor(i / 5);
  const name = bindleName(n);
  const v = i % 5;
  const version = v === 4 ? `${1 + (n % 3)}.${v}.0-rc.${n % 4}` : `${1 + (n % 3)}.${v * 3}.${n % 11}`;
  const invoice: Invoice = {
    bindleVersion: '1.0.0',
    bindle: {
      name,
      version,
      description: `The ${word(n * 3)} ${word(n * 5 + 1)} module for ${word(n * 11 + 2)} systems`,
      authors: [PEOPLE[n % PEOPLE.length] ?? 'nobody'],
    },
    parcel: [0, 1, 2].map((j) => ({
      label: { sha256: sha(i, j), mediaType: 'application/wasm', name: `part-${j}.wasm`, size: 1000 + j },
    })),
  };
  if (i % 50 === 0) invoice.yanked = true;
  return {
    name,
    version,
    canonicalId: canonicalId({ name, version }),
    invoice,
    toml: renderInvoice(invoice, 'toml'),
    json: renderInvoice(invoice, 'json'),
    yanked: invoice.yanked === true,
    createdAt: Date.now(),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 100_000);
  const repeats = Number(process.argv[3] ?? 200);
  // Optional: keep the seeded file at this path and reuse it on the next run.
  const keep = process.argv[4];
  const dir = mkdtempSync(join(tmpdir(), 'bindle-index-bench-'));
  try {
    const path = keep ?? join(dir, 'index.db');
    const reuse = keep !== undefined && existsSync(keep);
    const index = SqliteInvoiceIndex.open(path);
    let started = performance.now();
    if (reuse) {
      console.log(`reusing ${path} with ${await index.count()} invoices`);
    } else {
      for (let i = 0; i < count; i++) await index.insert(entry(i));
      const seedMs = performance.now() - started;
      console.log(`seeded ${count} invoices in ${(seedMs / 1000).toFixed(1)} s (${((seedMs * 1000) / count).toFixed(0)} µs/insert)`);
    }

    const base: InvoiceQuery = { query: '', offset: 0, limit: 50, strict: false, yanked: false };
    const shapes: Array<[string, (k: number) => InvoiceQuery]> = [
      ['everything, first page', () => base],
      ['everything, offset 5000', () => ({ ...base, offset: 5000 })],
      ['strict, one name', (k) => ({ ...base, strict: true, query: `/${(k * 97) % (count / 5)}` })],
      ['strict, 2 terms', (k) => ({ ...base, strict: true, query: `${word(k)} ${word(k + 7)}` })],
      ['strict, full name', (k) => ({ ...base, strict: true, query: bindleName((k * 7919) % (count / 5)) })],
      ['strict, short term', (k) => ({ ...base, strict: true, query: `/${k % 10}7` })],
      ['standard, author', (k) => ({ ...base, query: (PEOPLE[k % PEOPLE.length] ?? '').split(' ')[1] ?? '' })],
      ['standard, 2 words', (k) => ({ ...base, query: `${word(k)} ${word(k * 3 + 1)}` })],
      ['standard, 3 words', (k) => ({ ...base, query: `${word(k)} ${word(k + 5)} systems` })],
      ['standard, version', (k) => ({ ...base, query: `2.3.${k % 11}` })],
      ['exact version', (k) => ({ ...base, version: `2.6.${k % 11}` })],
      ['range ^2.0.0', () => ({ ...base, version: '^2.0.0' })],
      ['strict + range', (k) => ({ ...base, strict: true, query: word(k), version: '>=1.3.0 <2' })],
    ];
    // Wall time, and CPU time of this process (what a query costs when the machine is busy).
    const ms = (n: number): string => n.toFixed(2).padStart(7);
    console.log(`${'query shape'.padEnd(26)}    wall p50     p99 |  cpu p50     p99 | mean total`);
    for (const [label, make] of shapes) {
      const wall: number[] = [];
      const cpu: number[] = [];
      let total = 0;
      for (let k = 0; k < repeats; k++) {
        const query = make(k);
        started = performance.now();
        const cpuStart = process.cpuUsage();
        const result = await index.query(query);
        const used = process.cpuUsage(cpuStart);
        wall.push(performance.now() - started);
        cpu.push((used.user + used.system) / 1000);
        total += result.total;
      }
      wall.sort((a, b) => a - b);
      cpu.sort((a, b) => a - b);
      console.log(
        `${label.padEnd(26)} ${ms(percentile(wall, 50))} ${ms(percentile(wall, 99))} | ${ms(percentile(cpu, 50))} ${ms(percentile(cpu, 99))} | ${(total / repeats).toFixed(0)}`,
      );
    }
    await index.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
