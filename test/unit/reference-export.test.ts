/**
 * `bindle-server export --reference-layout`: each parcel is re-hashed as it is copied, and a
 * stored parcel whose bytes are not its digest is reported, not exported.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { exportReferenceLayout } from '../../server/service/reference-export.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp } from '../helpers/test-app.js';

t.test('a corrupt stored parcel is reported and not exported; the intact ones are', async (t) => {
  const ta = await makeTestApp(t);
  const good = Buffer.from('an intact parcel');
  const bad = Buffer.from('a parcel to corrupt');
  const invoice = signedInvoice('example.com/export', '1.0.0', [{ name: 'good.txt', data: good }, { name: 'bad.txt', data: bad }]);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) })).statusCode, 202);
  for (const data of [good, bad]) {
    const res = await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/export/1.0.0@${sha256(data)}`, payload: data, headers: { 'content-type': 'application/octet-stream' } });
    t.equal(res.statusCode, 200, res.body);
  }
  writeFileSync(join(ta.dir, 'parcels', `${sha256(bad)}.dat`), Buffer.from('a parcel to c0rrupt'));
  const out = join(t.testdirName, 'exported');
  const report = await exportReferenceLayout(ta.index, ta.parcels, out);
  t.same(report, { invoices: 1, parcels: 1, missingParcels: 0, corruptParcels: [sha256(bad)] });
  t.same(readFileSync(join(out, 'parcels', sha256(good), 'parcel.dat')), good, 'the intact parcel is exported');
  t.notOk(existsSync(join(out, 'parcels', sha256(bad))), 'the corrupt one is not, nor its directory');
});
