/**
 * Our own test vectors (fixtures/vectors) are what scripts/gen-fixtures.ts generates with the
 * project's own code, and the tarball holds the same bindle as the directory beside it.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { staleVectors } from '../../scripts/gen-fixtures.js';
import { readStandalone } from '../../client/standalone/standalone-bindle.js';
import { HtpasswdAuthenticator } from '../../server/auth/index.js';
import { vec } from '../helpers/paths.js';

const STANDALONE_ID = '1927aefa8fdc8327499e918300e2e49ecb271321530cc5881fcd069ca8372dcd';

t.test('the committed vectors are current', async (t) => {
  t.same(await staleVectors(), [], 'regenerate with npx tsx scripts/gen-fixtures.ts');
});

t.test('the tarball and the htpasswd file mean what the generator wrote', async (t) => {
  const dir = await readStandalone(vec('data', 'standalone', STANDALONE_ID));
  const tar = await readStandalone(vec('data', 'standalone', `${STANDALONE_ID}.tar.gz`));
  t.teardown(() => tar.cleanup());
  t.same(tar.invoice, dir.invoice);
  t.same([...tar.parcels.keys()], [...dir.parcels.keys()]);
  for (const [sha, path] of dir.parcels) t.same(await readFile(tar.parcels.get(sha) ?? ''), await readFile(path), sha);
  t.same(await readFile(join(dir.root, 'invoice.toml'), 'utf8'), await readFile(vec('scaffolds', 'valid_v1', 'invoice.toml'), 'utf8'), 'the standalone bindle is valid_v1');
  const htpasswd = await HtpasswdAuthenticator.load(vec('data', 'htpasswd'));
  t.same(await htpasswd.authenticate(`Basic ${Buffer.from('admin:sw0rdf1sh').toString('base64')}`), { id: 'admin', kind: 'basic' });
});
