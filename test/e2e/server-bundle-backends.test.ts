/**
 * The built server on PostgreSQL + S3 (real services) runs node-postgres and the AWS SDK from its
 * own bundle's chunks (scripts/bundle-server.mjs), not from node_modules: loaded from there, their
 * CommonJS files went through Node's module resolution and CommonJS export lexer at every start,
 * which got a dozen functions optimized by Turbofan and ~7 MiB more resident in an idle replica.
 * The SDK's warning on an older Node is a line of the server's log, and of `gc`'s stderr
 * (server/process-warnings.ts), not Node's free text.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';

import { sha256, signedInvoice } from '../helpers/bindles.js';
import { exitList, withModuleList } from '../helpers/module-list.js';
import { vec } from '../helpers/paths.js';
import { freshDatabase, postgresUrl } from '../helpers/postgres.js';
import { s3ParcelsSpec, s3TestBucket, s3TestClient, s3TestService } from '../helpers/s3-service.js';
import { createHostKeys, SERVER_BIN, startServerProcess } from '../helpers/server-process.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';

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
