/**
 * The metrics decorators (server/metrics/instrumented-*.ts) are implementations of their seams:
 * each runs its seam's contract suite around a real implementation, and counts what it should.
 */
import { join } from 'node:path';
import t from 'tap';
import { isBindleError } from '../../core/errors/bindle-error.js';
import { AnonymousGetAuthorizer, StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { InstrumentedAuthenticator, InstrumentedAuthorizer } from '../../server/metrics/instrumented-checks.js';
import { InstrumentedInvoiceIndex } from '../../server/metrics/instrumented-invoice-index.js';
import { InstrumentedParcelStore } from '../../server/metrics/instrumented-parcel-store.js';
import { ServerMetrics } from '../../server/metrics/server-metrics.js';
import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import { SqliteInvoiceIndex } from '../../server/storage/sqlite-invoice-index.js';
import { parseScrape } from '../helpers/prometheus.js';
import { authenticatorContract } from './authenticator-contract.js';
import { authorizerContract } from './authorizer-contract.js';
import { invoiceIndexContract, makeEntry } from './invoice-index-contract.js';
import { parcelStoreContract, sha256Of, streamOf } from './parcel-store-contract.js';

const metrics = (): ServerMetrics => new ServerMetrics({ version: 'test', processMetrics: false });

await parcelStoreContract(t, 'InstrumentedParcelStore over FileParcelStore', async (dir, receive) => new InstrumentedParcelStore(await FileParcelStore.open(dir, receive), metrics()));
invoiceIndexContract(t, 'InstrumentedInvoiceIndex over SqliteInvoiceIndex', (dir) =>
  Promise.resolve(new InstrumentedInvoiceIndex(SqliteInvoiceIndex.open(join(dir, 'index.db')), metrics())),
);

const TOKEN = 'instrumented-token';
authenticatorContract(t, 'InstrumentedAuthenticator over StaticTokenAuthenticator', async () => {
  await Promise.resolve();
  return {
    authenticator: new InstrumentedAuthenticator(StaticTokenAuthenticator.parse(`ci:${tokenDigest(TOKEN)}\n`, 'test tokens'), metrics()),
    good: [{ header: `Bearer ${TOKEN}`, principal: { id: 'ci', kind: 'token' } }],
    bad: [{ label: 'unknown token', header: 'Bearer not-a-known-token' }],
  };
});
authorizerContract(t, 'InstrumentedAuthorizer over AnonymousGetAuthorizer', async () => ({
  authorizer: new InstrumentedAuthorizer(new AnonymousGetAuthorizer(), metrics()),
  cases: [
    { who: undefined, action: 'push', name: 'example.com/app', allowed: false },
    { who: { id: 'alice', kind: 'basic' }, action: 'push', name: 'example.com/app', allowed: true },
  ],
}));

t.test('the decorators count operations, failures by code, uploads in flight and refusals', async (t) => {
  const m = metrics();
  const dir = t.testdir();
  const store = new InstrumentedParcelStore(await FileParcelStore.open(dir), m);
  const index = new InstrumentedInvoiceIndex(SqliteInvoiceIndex.open(join(dir, 'index.db')), m);
  t.teardown(async () => {
    await store.close();
    await index.close();
  });
  const data = Buffer.from('counted');
  const sha = sha256Of(data);
  const put = store.put(sha, data.length, streamOf(data));
  t.equal(parseScrape(await m.render()).value('bindle_parcel_uploads_in_flight'), 1, 'an upload under way is in flight');
  await put;
  await t.rejects(store.put(sha, data.length, streamOf(data)), { code: 'already_exists' });
  await t.rejects(store.has('not-a-digest'), { code: 'bad_request' });
  await index.insert(makeEntry('example.com/app', '1.0.0'));
  await index.get('example.com/app', '1.0.0');
  // Each operation keeps its own series, however often and in whatever order it is recorded into.
  for (let i = 0; i < 2; i++) {
    await index.lookup('example.com/app', '1.0.0');
    await index.get('example.com/app', '1.0.0');
  }
  // A cached answer is a look-up too; a miss is not (lookup() then answers, and is timed).
  t.equal(index.cachedInvoice?.('example.com/app', '1.0.0')?.version, '1.0.0', 'the wrapped index\'s cached invoice');
  t.equal(index.cachedInvoice?.('example.com/app', '9.0.0'), undefined, 'a miss');

  const authenticator = new InstrumentedAuthenticator(StaticTokenAuthenticator.parse(`ci:${tokenDigest(TOKEN)}\n`, 'tokens'), m);
  await t.rejects(authenticator.authenticate('Bearer wrong'), { code: 'unauthenticated' });
  const authorizer = new InstrumentedAuthorizer(new AnonymousGetAuthorizer(), m);
  let refusal = '';
  try {
    authorizer.authorize(undefined, 'push', 'example.com/app');
  } catch (err) {
    refusal = isBindleError(err) ? err.code : 'not a BindleError';
  }
  t.match(refusal, /^(unauthenticated|forbidden)$/, 'an anonymous push is refused');

  const scrape = parseScrape(await m.render());
  const op = (seam: string, operation: string): number => scrape.count('bindle_storage_operation_duration_seconds', { seam, operation });
  t.equal(op('parcel_store', 'put'), 2, 'both puts timed');
  t.equal(op('parcel_store', 'has'), 1);
  t.equal(op('invoice_index', 'insert'), 1);
  t.equal(op('invoice_index', 'get'), 3, 'every get timed, in one series');
  t.equal(op('invoice_index', 'lookup'), 3, 'every look-up timed, in a series of its own, the cached hit too');
  const errors = (labels: Record<string, string>): number => scrape.value('bindle_storage_operation_errors_total', labels);
  t.equal(errors({ seam: 'parcel_store', operation: 'put', code: 'already_exists' }), 1);
  t.equal(errors({ seam: 'parcel_store', operation: 'has', code: 'bad_request' }), 1);
  t.equal(errors({ seam: 'invoice_index' }), 0, 'no index errors');
  t.equal(scrape.value('bindle_parcel_uploads_in_flight'), 0, 'no upload in flight once they ended');
  t.equal(scrape.value('bindle_auth_failures_total', { stage: 'authenticate', reason: 'unauthenticated' }), 1);
  t.equal(scrape.value('bindle_auth_failures_total', { stage: 'authorize', reason: refusal }), 1);
});
