/**
 * The built server on PostgreSQL + S3 (real services) runs node-postgres and the AWS SDK from its
 * own bundle's chunks (scripts/bundle-server.mjs), not from node_modules: loaded from there, their
 * CommonJS files went through Node's module resolution and CommonJS export lexer at every start,
 * which got a dozen functions optimized by Turbofan and ~7 MiB more resident in an idle replica.
 * The SDK's warning on an older Node is a line of the server's log, and of `gc`'s stderr
 * (server/process-warnings.ts), not Node's free text. And the server spools the S3 store's upload
 * parts past its memory cap under its data directory (server/storage/part-spool.ts).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';

import { creatorKey, sha256, signedInvoice } from '../helpers/bindles.js';
import { exitList, withModuleList } from '../helpers/module-list.js';
import { vec } from '../helpers/paths.js';
import { freshDatabase, postgresUrl } from '../helpers/postgres.js';
import { s3ParcelsSpec, s3TestBucket, s3TestClient, s3TestService } from '../helpers/s3-service.js';
import { createHostKeys, SERVER_BIN, startServerProcess } from '../helpers/server-process.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signInvoice } from '../../core/signing/sign.js';
import type { Invoice } from '../../schema/index.js';

const pgUrl = postgresUrl(t);
// Each helper plans the file as skipped when its service is absent: ask the second only when the first is there.
const s3 = pgUrl === undefined ? undefined : s3TestService(t);

if (pgUrl !== undefined && s3 !== undefined) await t.test('on PostgreSQL + S3 the server loads pg and the AWS SDK from its bundle', async (t) => {
  const bucket = await s3TestBucket(t, await s3TestClient(t, s3));
  const dir = t.testdir();
  const hostKeys = createHostKeys(t, dir);
  const storage = ['--index', await freshDatabase(t, pgUrl), '--parcels', s3ParcelsSpec(s3, bucket, 'bundle')];
  const server = await startServerProcess(t, {
    args: [
      ...storage,
      '--signing-keys', hostKeys,
      '--keyring', vec('scaffolds', 'keys', 'keyring.toml'),
      '--unauthenticated',
    ],
    ...withModuleList(t),
  });

  // Both libraries at work: an invoice into PostgreSQL, its parcel into S3 and back.
  const data = Buffer.from('bundled backends');
  const invoice = signedInvoice('example.com/bundled', '1.0.0', [{ name: 'p.txt', data }]);
  const created = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(invoice) });
  t.ok([201, 202].includes(created.status), `the invoice is created: ${await created.text()}`);
  const parcelUrl = `${server.url}_i/example.com/bundled/1.0.0@${sha256(data)}`;
  const uploaded = await fetch(parcelUrl, { method: 'POST', body: data });
  t.equal(uploaded.status, 200, `its parcel is stored: ${await uploaded.text()}`);
  const fetched = await fetch(parcelUrl);
  t.same(Buffer.from(await fetched.arrayBuffer()), data, 'and served back');
  t.equal(await server.stop(), 0, 'it stops cleanly');

  const files = exitList(server.output(), 'FILES');
  t.ok(files.some((file) => file.endsWith('launch.cjs')), `the file list is of what it required (${files.length} files, the launcher among them)`);
  const fromNodeModules = files.filter((file) => /\/node_modules\/(?:pg[^/]*|postgres-[^/]+|@aws-sdk|@smithy|@aws-crypto)\//.test(file));
  t.same(fromNodeModules, [], 'no file of node-postgres or the AWS SDK came from node_modules');

  // The AWS SDK warns on a Node older than the one its later versions need: a log line, not free text.
  const gc = spawnSync(process.execPath, [SERVER_BIN, 'gc', '--dry-run', ...storage], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(gc.status, 0, `gc --dry-run on the same storage: ${gc.stderr}`);
  for (const [what, output] of [['the server', server.output()], ['gc', gc.stderr]] as const) {
    t.notMatch(output, /\(node:\d+\)/, `${what} wrote no warning in Node's own format`);
    if (Number(process.versions.node.split('.')[0]) < 22) t.match(output, /"msg":"process warning: /, `${what} logged the AWS SDK's warning on this Node`);
  }
});

/**
 * Starts a server on S3 (its parcels spec given `query` too), has `uploads` clients each send 7 MiB
 * of a 9 MiB parcel and stop, and checks that at least `expectSpooled` of their parts are spooled
 * to unlinked files under <directory>/part-spool, closed once the clients go.
 */
async function stoppedUploadsSpool(t: Test, query: string, uploads: number, expectSpooled: number): Promise<void> {
  if (pgUrl === undefined || s3 === undefined) throw new Error('needs PostgreSQL and S3');
  const bucket = await s3TestBucket(t, await s3TestClient(t, s3));
  const dir = t.testdir();
  const server = await startServerProcess(t, {
    args: [
      '--index', await freshDatabase(t, pgUrl),
      '--parcels', `${s3ParcelsSpec(s3, bucket, 'spool')}${query}`,
      '--signing-keys', createHostKeys(t, dir),
      '--keyring', vec('scaffolds', 'keys', 'keyring.toml'),
      '--unauthenticated',
    ],
  });
  const declared = 9 << 20;
  const digests = Array.from({ length: uploads }, () => randomBytes(32).toString('hex'));
  const unsigned: Invoice = {
    bindleVersion: '1.0.0',
    bindle: { name: 'example.com/spooled', version: '1.0.0' },
    parcel: digests.map((sha, i) => ({ label: { sha256: sha, size: declared, name: `part-${i}.bin`, mediaType: 'application/octet-stream' } })),
  };
  const created = await fetch(`${server.url}_i`, { method: 'POST', headers: { 'content-type': 'application/toml' }, body: renderInvoice(signInvoice(unsigned, 'creator', creatorKey())) });
  t.equal(created.status, 202, created.status === 202 ? 'the invoice is created, its parcels missing' : await created.text());
  const { port } = new URL(server.origin);
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
  });
  for (const sha of digests) {
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST /v1/_i/example.com/spooled/1.0.0@${sha} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
    // 7 MiB: all but the last write batch (at most 1 MiB) reaches the store's part.
    socket.write(randomBytes(7 << 20));
    sockets.push(socket);
  }
  const spoolDir = join(server.directory, 'part-spool');
  /** The server's descriptors on files in its spool directory. */
  const spoolFiles = (): string[] => {
    const pid = server.child.pid ?? 0;
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        return target.startsWith(`${spoolDir}/`) ? [target] : [];
      } catch {
        return [];
      }
    });
  };
  let open: string[] = [];
  // Until the uploads have spooled what they were sent: the same files for a second (a file is
  // unlinked just after it is made, so one read mid-way would see its name).
  for (let waited = 0, same = 0; same < 20 && waited < 60_000; waited += 50) {
    await sleep(50);
    const now = spoolFiles();
    same = now.length >= expectSpooled && now.join('\n') === open.join('\n') ? same + 1 : 0;
    open = now;
  }
  t.ok(open.length >= expectSpooled, `the uploads past the cap spool their parts (${open.length} files)`);
  t.ok(open.every((target) => target.endsWith(' (deleted)')), 'to files already unlinked');
  t.same(readdirSync(spoolDir), [], 'so the directory shows none');
  for (const socket of sockets) socket.destroy();
  for (let waited = 0; spoolFiles().length > 0 && waited < 30_000; waited += 50) await sleep(50);
  t.same(spoolFiles(), [], 'their clients gone, the files are closed');
  t.equal(await server.stop(), 0);
}

// Each upload's first part reserves its 8 MiB once it holds 1 MiB (PART_WHOLE_FROM_BYTES): at most 16 fit in 128 MiB.
if (pgUrl !== undefined && s3 !== undefined) await t.test('on S3, parts past the memory cap are spooled to unlinked files under <directory>/part-spool', (t) => stoppedUploadsSpool(t, '', 24, 24 - 16));
if (pgUrl !== undefined && s3 !== undefined) await t.test('the s3:// parameter partMemory sets the cap: with 0, every part is spooled', (t) => stoppedUploadsSpool(t, '&partMemory=0', 3, 3));
