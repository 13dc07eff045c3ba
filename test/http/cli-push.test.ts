/**
 * `bindle push ./dir` checks the standalone bindle locally before its first write: a parcel the
 * invoice lists but the directory lacks, or a parcel file whose bytes do not match its label,
 * fails with nothing created on the server (no invoice, nothing in search). Run in-process
 * against a real Bindle server listening on 127.0.0.1.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatId } from '../../core/ids/bindle-id.js';
import { BindleClient } from '../../client/lib/bindle-client.js';
import { parcelFileName, PARCELS_DIR, writeStandalone } from '../../client/standalone/standalone-bindle.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { listenWithNewCreator } from '../helpers/test-app.js';

t.test('push of an incomplete or corrupt standalone bindle writes nothing', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Push Test <push@example.com>');
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  const bindle = inProcessCli(join(dir, 'home'));
  const one = Buffer.from('first parcel\n');
  const two = Buffer.from('second parcel\n');

  const partialInvoice = signedInvoice('example.com/partial', '1.0.0', [{ name: 'one.txt', data: one }, { name: 'two.txt', data: two }], { key: creator });
  const partial = await writeStandalone(join(dir, 'partial'), partialInvoice, new Map([[sha256(one), one]]));
  const r = await bindle(['-s', server.url, '--retries', '0', 'push', partial]);
  t.equal(r.code, 1, 'a missing parcel fails');
  t.match(r.stderr, /lacks 1 parcel\(s\) its invoice lists: .*two\.txt.*nothing was pushed/);
  t.equal(await client.invoiceExists(formatId({ name: 'example.com/partial', version: '1.0.0' })), false, 'no invoice was created');
  t.equal((await client.query({ query: 'example.com/partial' })).total, 0, 'nothing in search');

  const corruptInvoice = signedInvoice('example.com/corrupt', '1.0.0', [{ name: 'one.txt', data: one }], { key: creator });
  const corrupt = await writeStandalone(join(dir, 'corrupt'), corruptInvoice, new Map([[sha256(one), one]]));
  writeFileSync(join(corrupt, PARCELS_DIR, parcelFileName(sha256(one))), 'first parcel!');
  const c = await bindle(['-s', server.url, '--retries', '0', 'push', corrupt]);
  t.equal(c.code, 1, 'a parcel file not matching its label fails');
  t.match(c.stderr, /could not read standalone bindle/);
  t.equal(await client.invoiceExists(formatId({ name: 'example.com/corrupt', version: '1.0.0' })), false, 'no invoice was created');

  // Complete, it pushes; then the same directory with a parcel removed is a no-op check of the
  // parcels already on the server (the invoice exists), not an error.
  const full = await writeStandalone(join(dir, 'full'), partialInvoice, new Map([[sha256(one), one], [sha256(two), two]]));
  const ok = await bindle(['-s', server.url, '--retries', '0', 'push', full]);
  t.equal(ok.code, 0, 'the complete bindle pushes', { stderr: ok.stderr });
  const again = await bindle(['-s', server.url, '--retries', '0', 'push', partial]);
  t.equal(again.code, 0, 'the partial copy of a release already on the server is a no-op', { stderr: again.stderr });
  t.match(again.stdout, /no-op/);
});
