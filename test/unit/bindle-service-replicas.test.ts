/**
 * Two BindleService instances (two replicas) on one data directory: the index alone decides
 * racing creates and yanks (issue 12: with invoice files and an in-process lock, the index held
 * the invoice and its file was gone). Real parts: the SQLite index and the file parcel store.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { signedInvoice } from '../helpers/bindles.js';
import { makeTestApp } from '../helpers/test-app.js';

t.test('racing creates of one invoice over two replicas: exactly one stores it', async (t) => {
  const first = await makeTestApp(t);
  const second = await makeTestApp(t, { dir: first.dir });
  const replicas = [first.service, second.service] as const;
  for (let round = 0; round < 4; round++) {
    const version = `1.0.${round}`;
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) =>
        replicas[i % 2 === 0 ? 0 : 1].createInvoice(signedInvoice('race.example/app', version, [{ name: 'a', data: Buffer.from(`r${round}`) }])),
      ),
    );
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `${version}: one create succeeds`);
    for (const r of results) if (r.status === 'rejected') t.match(r.reason, { code: 'already_exists' });
    const seen = await Promise.all(replicas.map((s) => s.getInvoice({ name: 'race.example/app', version })));
    t.equal(seen[0]?.toml, seen[1]?.toml, `${version}: both replicas serve the one record`);
  }
  t.notOk(existsSync(join(first.dir, 'invoices')), 'no invoice files are written');
});

t.test('racing yanks over two replicas: one yank signature, every caller gets it', async (t) => {
  const first = await makeTestApp(t);
  const second = await makeTestApp(t, { dir: first.dir });
  const id = { name: 'race.example/app', version: '2.0.0' };
  await first.service.createInvoice(signedInvoice(id.name, id.version, []));
  const yanks = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? first : second).service.yank(id, `reason ${i}`)));
  const stored = await second.service.getInvoice(id, true);
  t.equal(stored.invoice.yankedSignature?.length, 1, 'exactly one yank signature');
  for (const y of yanks) t.equal(y.toml, stored.toml, 'each caller got the stored yank');
  await t.rejects(first.service.getInvoice(id), { code: 'yanked' });
});
