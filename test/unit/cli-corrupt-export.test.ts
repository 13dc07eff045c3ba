/**
 * `bindle get --export` reads the cached bindle (client/cli/local-cache.ts's
 * removingCorruptParcels around client/standalone's exportTarball): a cached parcel that is not
 * its label's bytes fails the export and is removed from the cache, the error saying so, as
 * `get --extract` and `get-parcel` remove one they find; any other failure removes nothing.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BindleError } from '../../core/errors/bindle-error.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { cachedBindlePath, cachedParcelPath, removingCorruptParcels } from '../../client/cli/local-cache.js';
import { exportTarball } from '../../client/standalone/standalone-bindle.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';

const ID = { name: 'example.com/app', version: '1.0.0' };
const INTACT = Buffer.from('an intact parcel\n');
const CORRUPT = Buffer.from('a parcel that will be corrupted\n');

/** A cache holding ID with INTACT as it is and CORRUPT with one byte changed. */
function cache(dir: string): string {
  const bindleDir = join(dir, 'cache');
  const invoice = signedInvoice(ID.name, ID.version, [{ name: 'intact.txt', data: INTACT }, { name: 'corrupt.txt', data: CORRUPT }]);
  mkdirSync(join(cachedBindlePath(bindleDir, ID), 'parcels'), { recursive: true });
  writeFileSync(join(cachedBindlePath(bindleDir, ID), 'invoice.toml'), renderInvoice(invoice));
  writeFileSync(cachedParcelPath(bindleDir, ID, sha256(INTACT)), INTACT);
  const changed = Buffer.from(CORRUPT);
  changed[0] = (changed[0] ?? 0) ^ 0xff;
  writeFileSync(cachedParcelPath(bindleDir, ID, sha256(CORRUPT)), changed);
  return bindleDir;
}

t.test('an export that finds a corrupt cached parcel removes it and says so', async (t) => {
  const dir = t.testdir();
  const bindleDir = cache(dir);
  const corrupt = cachedParcelPath(bindleDir, ID, sha256(CORRUPT));
  await t.rejects(
    removingCorruptParcels(bindleDir, ID, () => exportTarball(cachedBindlePath(bindleDir, ID), join(dir, 'out'))),
    { code: 'digest_mismatch', message: new RegExp(`corrupt\\.txt.*; the corrupt copy ${corrupt} was removed from the cache: run 'bindle get example\\.com/app/1\\.0\\.0' to download it again$`) },
  );
  t.notOk(existsSync(corrupt), 'the corrupt copy is gone');
  t.ok(existsSync(cachedParcelPath(bindleDir, ID, sha256(INTACT))), 'the intact one is kept');
});

t.test('any other failure removes nothing', async (t) => {
  const bindleDir = cache(t.testdir());
  await t.rejects(removingCorruptParcels(bindleDir, ID, () => Promise.reject(new BindleError('not_found', 'gone'))), { code: 'not_found', message: 'gone' });
  t.ok(existsSync(cachedParcelPath(bindleDir, ID, sha256(CORRUPT))), 'the cache is left as it was');
  t.equal(await removingCorruptParcels(bindleDir, ID, () => Promise.resolve('done')), 'done', 'and a step that succeeds is answered as it is');
});
