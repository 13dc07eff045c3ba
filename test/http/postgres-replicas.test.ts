/**
 * Two app instances (two replicas) on one PostgreSQL index (BINDLE_TEST_POSTGRES_URL) and one
 * parcel store (a directory, or an S3 prefix on postgres+s3), over HTTP: racing creates of one
 * invoice spread over both give exactly one 201/202 and 409s, both serve the one record, and a
 * yank through one is refused by the other's GET within 3 s (loose for a loaded machine;
 * typically well under 1 s), also where the other answered it in its fast lane (a real
 * connection, server/http/fast-lane.ts) until then.
 */
import t from 'tap';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { PostgresInvoiceIndex } from '../../server/storage/postgres-invoice-index.js';
import { signedInvoice } from '../helpers/bindles.js';
import { postgresUrl, schemaPool } from '../helpers/postgres.js';
import { listenForRawClients, makeTestApp } from '../helpers/test-app.js';

const url = postgresUrl(t);
if (url !== undefined) {
  const schemaFor = schemaPool(t, url);

  t.test('two replicas on one PostgreSQL index', async (t) => {
    const schema = await schemaFor(t.testdir());
    const openIndex = (): Promise<PostgresInvoiceIndex> => PostgresInvoiceIndex.open(url, { schema, poolSize: 4 });
    const first = await makeTestApp(t, { openIndex });
    const second = await makeTestApp(t, { dir: first.dir, openIndex });
    const replicas = [first.app, second.app] as const;
    const invoice = signedInvoice('replica.example/app', '1.0.0', [{ name: 'p', data: Buffer.from('payload') }]);
    const payload = renderInvoice(invoice);
    const replies = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        replicas[i % 2 === 0 ? 0 : 1].inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload }),
      ),
    );
    const statuses = replies.map((r) => r.statusCode);
    t.equal(statuses.filter((s) => s === 201 || s === 202).length, 1, `exactly one create: ${statuses.join(',')}`);
    t.equal(statuses.filter((s) => s === 409).length, 31, 'the rest are 409');
    const gets = await Promise.all(replicas.map((app) => app.inject({ url: '/v1/_i/replica.example/app/1.0.0' })));
    t.same(gets.map((r) => r.statusCode), [200, 200]);
    t.equal(gets[0]?.body, gets[1]?.body, 'both serve the one record');
    const query = await second.app.inject({ url: '/v1/_q?q=replica', headers: { accept: 'application/json' } });
    t.equal(query.json<{ total: number }>().total, 1);

    const yank = await first.app.inject({ method: 'DELETE', url: '/v1/_i/replica.example/app/1.0.0' });
    t.equal(yank.statusCode, 200);
    const deadline = Date.now() + 3000;
    let status = 0;
    while (status !== 403 && Date.now() < deadline) {
      status = (await second.app.inject({ url: '/v1/_i/replica.example/app/1.0.0' })).statusCode;
      if (status !== 403) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    t.equal(status, 403, 'the other replica refuses the yanked invoice within 3 s (the bound is loose for a loaded machine; expected well under 1 s)');
    const again = await second.app.inject({ method: 'DELETE', url: '/v1/_i/replica.example/app/1.0.0' });
    t.equal(again.statusCode, 200, 'a second yank on the other replica is idempotent');
    const stored = await first.app.inject({ url: '/v1/_i/replica.example/app/1.0.0?yanked=true', headers: { accept: 'application/json' } });
    t.equal(stored.json<{ yankedSignature?: unknown[] }>().yankedSignature?.length, 1, 'one yank signature');
  });

  t.test('a yank through one replica ends the other\'s fast-lane answers', async (t) => {
    const schema = await schemaFor(t.testdir());
    const openIndex = (): Promise<PostgresInvoiceIndex> => PostgresInvoiceIndex.open(url, { schema, poolSize: 4 });
    const first = await makeTestApp(t, { openIndex });
    const second = await makeTestApp(t, { dir: first.dir, openIndex });
    let routed = 0;
    second.app.addHook('onRequest', (_request, _reply, done) => {
      routed++;
      done();
    });
    const port = await listenForRawClients(t, second);
    const invoice = signedInvoice('replica.example/fast', '1.0.0', [{ name: 'p', data: Buffer.from('payload') }]);
    const created = await first.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) });
    t.equal(created.statusCode, 202, 'created; its parcel is missing, which a GET of the invoice does not need');
    const get = async (): Promise<number> => (await fetch(`http://127.0.0.1:${port}/v1/_i/replica.example/fast/1.0.0`)).status;
    t.equal(await get(), 200, 'the first read, by the route, caches the invoice');
    const before = routed;
    t.equal(await get(), 200);
    t.equal(routed, before, 'the second is answered in the fast lane');
    const yank = await first.app.inject({ method: 'DELETE', url: '/v1/_i/replica.example/fast/1.0.0' });
    t.equal(yank.statusCode, 200);
    const deadline = Date.now() + 3000;
    let status = 0;
    while (status !== 403 && Date.now() < deadline) {
      status = await get();
      if (status !== 403) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    t.equal(status, 403, 'the other replica refuses the yanked invoice within 3 s');
  });
}
