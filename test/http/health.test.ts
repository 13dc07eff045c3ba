/**
 * `/livez`, `/readyz` and `/healthz` (issue 15 item 2): ready while serving with both storage
 * seams answering; 503 with a JSON body (schema ReadinessReply) naming what failed when the
 * index or the parcel store is gone (closed, or its volume unmounted: a real tmpfs, where root
 * may mount one), while starting and while stopping.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import { schemaIssues, type ReadinessReply } from '../../schema/index.js';
import { loadServerConfig } from '../../server/config/server-config.js';
import { readiness, type ReadinessCheck } from '../../server/service/readiness.js';
import { openServer } from '../../server/server-runtime.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp } from '../helpers/test-app.js';
import { localTmpfs, removeTmpfs, unmountTmpfs } from '../helpers/tmpfs.js';

function readinessBody(t: Test, body: string): ReadinessReply {
  const reply = JSON.parse(body) as ReadinessReply;
  t.same(schemaIssues('ReadinessReply', reply), [], 'the body follows schema/readiness-reply.schema.json');
  return reply;
}

t.test('serving with both seams answering: live and ready', async (t) => {
  const ta = await makeTestApp(t);
  const live = await ta.app.inject({ url: '/livez' });
  t.equal(live.statusCode, 200);
  t.same(JSON.parse(live.body), { status: 'OK', version: 'test' });
  const ready = await ta.app.inject({ url: '/readyz' });
  t.equal(ready.statusCode, 200);
  t.match(ready.headers['content-type'], /^application\/json/);
  const body = readinessBody(t, ready.body);
  t.equal(body.status, 'ready');
  t.equal(body.state, 'serving');
  t.same(Object.keys(body.checks).sort(), ['index', 'parcels'], 'both seams are checked');
  t.ok(body.checks.index?.ok === true && body.checks.parcels?.ok === true, 'both answered');
  t.equal((await ta.app.inject({ url: '/healthz' })).statusCode, 200);
});

t.test('a closed invoice index makes the server unready, saying so; it stays live', async (t) => {
  const ta = await makeTestApp(t);
  await ta.index.close();
  const res = await ta.app.inject({ url: '/readyz' });
  t.equal(res.statusCode, 503);
  const body = readinessBody(t, res.body);
  t.equal(body.status, 'unavailable');
  t.equal(body.code, 'unavailable');
  t.equal(body.checks.index?.ok, false, 'the index check failed');
  t.type(body.checks.index?.error, 'string', 'with its error');
  t.equal(body.checks.parcels?.ok, true, 'the parcel store still answers');
  t.match(body.error, /^not ready: index: /, 'the error names the failed check');
  t.equal((await ta.app.inject({ url: '/livez' })).statusCode, 200, 'still live');
});

t.test('a closed parcel store makes the server unready', async (t) => {
  const ta = await makeTestApp(t);
  await ta.parcels.close();
  const res = await ta.app.inject({ url: '/readyz' });
  t.equal(res.statusCode, 503);
  const body = readinessBody(t, res.body);
  t.equal(body.checks.parcels?.ok, false);
  t.equal(body.checks.index?.ok, true);
  t.match(body.error, /parcels: /);
});

/** Only the sqlite+file pair keeps its parcels on the local disk (test-backends.ts). */
const { dir: volume, skip: volumeSkip } = localTmpfs('16m', "keep no parcels on the local disk (the S3 store's lost bucket: test/contract)");

t.test("the parcel store's volume unmounted under the server: parcels unavailable (503), not missing, and the server unready", { skip: volumeSkip }, async (t) => {
  if (volume === undefined) return;
  t.teardown(() => removeTmpfs(volume));
  const ta = await makeTestApp(t, { dir: volume });
  const stored = Buffer.from('stored before the volume went');
  const never = Buffer.from('never uploaded');
  const invoice = signedInvoice('example.com/unmounted', '1.0.0', [{ name: 'stored.txt', data: stored }, { name: 'never.txt', data: never }]);
  const created = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) });
  t.equal(created.statusCode, 202, created.body);
  const parcelUrl = (data: Buffer): string => `/v1/_i/example.com/unmounted/1.0.0@${sha256(data)}`;
  t.equal((await ta.app.inject({ method: 'POST', url: parcelUrl(stored), payload: stored })).statusCode, 200);

  // The SQLite index keeps its open files on the detached volume; the parcel store finds an empty directory.
  unmountTmpfs(volume);
  const unavailable = (res: { statusCode: number; body: string }, what: string): void => {
    t.equal(res.statusCode, 503, `${what}: ${res.body}`);
    if (res.body !== '') t.match(TOML.parse(res.body), { code: 'unavailable', error: /parcel store directory .* is missing/ }, `${what}: says why`);
  };
  unavailable(await ta.app.inject({ method: 'GET', url: parcelUrl(never) }), 'a GET of a parcel never uploaded');
  unavailable(await ta.app.inject({ method: 'HEAD', url: parcelUrl(never) }), 'a HEAD of it');
  unavailable(await ta.app.inject({ method: 'POST', url: parcelUrl(never), payload: never }), 'its upload');
  const missing = await ta.app.inject({ method: 'GET', url: '/v1/_r/missing/example.com/unmounted/1.0.0' });
  unavailable(missing, 'the missing parcels of the invoice');
  const ready = await ta.app.inject({ url: '/readyz' });
  t.equal(ready.statusCode, 503, 'not ready');
  const body = readinessBody(t, ready.body);
  t.match(body.checks, { index: { ok: true }, parcels: { ok: false, error: /is missing/ } }, 'because of the parcel store');
});

t.test('stopping: /readyz and /healthz answer 503, /livez 200', async (t) => {
  const ta = await makeTestApp(t, { state: () => 'stopping' });
  const res = await ta.app.inject({ url: '/readyz' });
  t.equal(res.statusCode, 503);
  const body = readinessBody(t, res.body);
  t.same([body.state, body.checks], ['stopping', {}], 'no check runs while stopping');
  t.match(body.error, /stopping/);
  t.equal((await ta.app.inject({ url: '/healthz' })).statusCode, 503);
  t.equal((await ta.app.inject({ url: '/livez' })).statusCode, 200);
});

t.test('the entry point is starting until it listens, then ready, and stopping once closed', async (t) => {
  const dir = t.testdir();
  const config = await loadServerConfig(['-i', '127.0.0.1:0', '-d', join(dir, 'data'), '--log-level', 'silent'], {}, dir);
  const server = await openServer(config, { hostLabel: 'Test Host <host@bindle.test>' });
  t.teardown(() => server.close());
  const starting = await server.app.inject({ url: '/readyz' });
  t.equal(starting.statusCode, 503, 'not ready before it listens');
  t.equal(readinessBody(t, starting.body).state, 'starting');
  const origin = await server.listen();
  const ready = await fetch(`${origin}/readyz`);
  t.equal(ready.status, 200, 'ready once listening');
  t.equal(readinessBody(t, await ready.text()).status, 'ready');
});

t.test('a check that does not answer within the deadline fails with that reason', async (t) => {
  const never: ReadinessCheck = { name: 'index', run: () => new Promise<never>(() => undefined) };
  const fine: ReadinessCheck = { name: 'parcels', run: () => Promise.resolve(true) };
  const report = await readiness('serving', [never, fine], 50);
  t.equal(report.status, 'unavailable');
  t.match(report.checks.index, { ok: false, error: 'no answer within 50 ms' });
  t.equal(report.checks.parcels?.ok, true);
});
