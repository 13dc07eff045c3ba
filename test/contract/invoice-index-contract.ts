/**
 * The behaviour every InvoiceIndex must show (server/storage/invoice-index.ts): round trips,
 * uniqueness (also between instances racing), compare-and-set yanks seen by other instances,
 * `/_q` semantics (PROTOCOL.md §4, ranges checked against the semver package), parcel look-ups
 * and durability across close and reopen. Run it with invoiceIndexContract from an implementation's test file.
 */
import type { Test } from 'tap';
import semver from 'semver';
import type { Invoice } from '../../schema/index.js';
import { canonicalInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { isTombstone, type InvoiceIndex, type InvoiceQuery, type InvoiceQueryResult, type StoredInvoice, type Tombstone } from '../../server/storage/invoice-index.js';
import { buildBindleManifest, sha256Digest, signatureReferrers } from '../../core/oci/index.js';
import type { OciUploadSession } from '../../server/storage/oci-uploads.js';

const PARCEL_A = 'a'.repeat(64);
const PARCEL_B = 'b'.repeat(64);
const PARCEL_C = 'c'.repeat(64);
const PARCEL_D = '0123456789abcdef'.repeat(4);

interface EntryOptions {
  description?: string;
  authors?: string[];
  parcels?: string[];
  /** The label sizes of `parcels`, by position; 100 bytes where not given. */
  sizes?: number[];
  yanked?: boolean;
}

/** A schema-valid invoice entry with TOML/JSON as the server would store them. */
export function makeEntry(name: string, version: string, options: EntryOptions = {}): StoredInvoice {
  const bindle: Invoice['bindle'] = { name, version };
  if (options.description !== undefined) bindle.description = options.description;
  if (options.authors !== undefined) bindle.authors = options.authors;
  const invoice: Invoice = { bindleVersion: '1.0.0', bindle };
  if (options.yanked === true) invoice.yanked = true;
  if (options.parcels !== undefined) {
    invoice.parcel = options.parcels.map((sha256, i) => ({
      label: { sha256, mediaType: 'application/octet-stream', name: `parcel-${i}.dat`, size: options.sizes?.[i] ?? 100 },
    }));
  }
  return {
    name,
    version,
    canonicalId: canonicalId({ name, version }),
    invoice: canonicalInvoice(invoice),
    toml: renderInvoice(invoice, 'toml'),
    json: renderInvoice(invoice, 'json'),
    yanked: options.yanked === true,
    createdAt: 1_700_000_000_000,
  };
}

/** A tombstone of name/version with a recognisable record. */
export function makeTombstone(name: string, version: string, record = `{"deleted":"${name}/${version}"}`): Tombstone {
  return { name, version, canonicalId: canonicalId({ name, version }), deletedAt: 1_700_000_100_000, record };
}

/** The query data set, deliberately not in query order. */
const SEED: readonly StoredInvoice[] = [
  makeEntry('enterprise.com/warpcore', '1.9.0', { parcels: [PARCEL_A] }),
  makeEntry('voyager.com/warpcore', '3.1.4', { description: 'Slipstream drive' }),
  makeEntry('enterprise.com/warpcore', '2.0.0-alpha.1'),
  makeEntry('enterprise.com/transporter', '0.3.0', { yanked: true, parcels: [PARCEL_C] }),
  makeEntry('enterprise.com/warpcore', '1.0.0', {
    description: 'The warp core',
    authors: ['Montgomery Scott', 'Geordi La Forge'],
    parcels: [PARCEL_A, PARCEL_B, PARCEL_A],
  }),
  makeEntry('enterprise.com/warpcore', '2.0.0'),
  makeEntry('example.com/Käse', '1.0.0', { description: 'Ein Käse', authors: ['Käthe Müller'] }),
  makeEntry('enterprise.com/warpcore', '1.10.0'),
  makeEntry('ab', '0.1.0', { description: 'tiny' }),
  makeEntry('enterprise.com/warpcore', '2.0.0-beta'),
  makeEntry('enterprise.com/transporter', '1.2.0', { description: 'Beams people around', authors: ['Miles OBrien'], parcels: [PARCEL_B] }),
  makeEntry('enterprise.com/warpcore', '2.0.0-alpha'),
  makeEntry('enterprise.com/warpcore', '1.2.5'),
];

/** Every unyanked seed invoice in query order: name (byte order), then SemVer descending. */
const ALL_IN_ORDER = [
  'ab/0.1.0',
  'enterprise.com/transporter/1.2.0',
  'enterprise.com/warpcore/2.0.0',
  'enterprise.com/warpcore/2.0.0-beta',
  'enterprise.com/warpcore/2.0.0-alpha.1',
  'enterprise.com/warpcore/2.0.0-alpha',
  'enterprise.com/warpcore/1.10.0',
  'enterprise.com/warpcore/1.9.0',
  'enterprise.com/warpcore/1.2.5',
  'enterprise.com/warpcore/1.0.0',
  'example.com/Käse/1.0.0',
  'voyager.com/warpcore/3.1.4',
];

function ids(result: InvoiceQueryResult): string[] {
  return result.invoices.map((i) => `${i.name}/${i.version}`);
}

function q(query: string, more: Partial<InvoiceQuery> = {}): InvoiceQuery {
  return { query, offset: 0, limit: 50, strict: false, yanked: false, ...more };
}

/**
 * Registers the contract as subtests of `t`. `makeIndex(dir)` opens the index kept in `dir`
 * (an empty directory the first time); called again with the same dir it must reopen the data.
 */
export function invoiceIndexContract(t: Test, name: string, makeIndex: (dir: string) => Promise<InvoiceIndex>): void {
  /** A fresh index in its own temp directory, closed when the subtest ends. */
  async function fresh(t: Test): Promise<{ index: InvoiceIndex; dir: string }> {
    const dir = t.testdir();
    const index = await makeIndex(dir);
    t.teardown(() => index.close());
    return { index, dir };
  }

  t.test(`${name}: InvoiceIndex contract`, async (t) => {
    t.test('OCI upload sessions: create, compare-and-set appends, delete, expiry, seen by a reopened index', async (t) => {
      const { index, dir } = await fresh(t);
      const session = (uuid: string, at: number): OciUploadSession => ({ uuid, name: 'example.com/app', chunks: [], size: 0, createdAt: at, updatedAt: at });
      await index.createOciUpload(session('u-1', 1000), 0);
      t.same(await index.ociUpload('u-1'), session('u-1', 1000), 'a new session has no chunks');
      await t.rejects(index.createOciUpload(session('u-1', 1000), 0), { code: 'already_exists' }, 'uuids are unique');
      t.equal(await index.ociUpload('u-2'), undefined, 'an unknown uuid is absent');

      const one = { sha256: PARCEL_A, size: 10 };
      const two = { sha256: PARCEL_B, size: 5 };
      t.equal(await index.appendOciUpload('u-1', 0, one, 2000), true, 'append at the current offset');
      t.equal(await index.appendOciUpload('u-1', 0, two, 2001), false, 'an append at a stale offset writes nothing');
      t.equal(await index.appendOciUpload('u-1', 11, two, 2001), false, 'nor one past the end');
      t.equal(await index.appendOciUpload('u-2', 0, two, 2001), false, 'nor one to an absent session');
      t.equal(await index.appendOciUpload('u-1', 10, two, 3000), true);
      t.equal(await index.appendOciUpload('u-1', 15, one, 3001), true, 'the same chunk may come twice');
      const racers = await Promise.all([0, 1, 2, 3].map((i) => index.appendOciUpload('u-1', 25, { sha256: PARCEL_C, size: i + 1 }, 4000)));
      t.equal(racers.filter(Boolean).length, 1, 'of racing appends at one offset exactly one wins');
      const won = racers.indexOf(true) + 1;
      const expected = { ...session('u-1', 1000), chunks: [one, two, one, { sha256: PARCEL_C, size: won }], size: 25 + won, updatedAt: 4000 };
      t.same(await index.ociUpload('u-1'), expected, 'chunks in order, size and updatedAt');
      await t.rejects(index.appendOciUpload('u-1', 25 + won, { sha256: 'X', size: 1 }, 5000), 'a malformed chunk is refused');

      await index.close();
      const reopened = await makeIndex(dir);
      t.teardown(() => reopened.close());
      t.same(await reopened.ociUpload('u-1'), expected, 'durable across close and reopen');
      await reopened.createOciUpload(session('u-3', 9000), 1000);
      t.same(await reopened.ociUpload('u-1'), expected, 'a session changed at the cutoff is kept');
      await reopened.createOciUpload(session('u-4', 9000), 4001);
      t.equal(await reopened.ociUpload('u-1'), undefined, 'a session idle before the cutoff is removed');
      t.equal(await reopened.deleteOciUpload('u-3'), true, 'delete removes it');
      t.equal(await reopened.deleteOciUpload('u-3'), false, 'once');
      t.equal(await reopened.ociUpload('u-3'), undefined);
      t.ok(await reopened.ociUpload('u-4'), 'others stay');
    });

    t.test('OCI blob links: a re-link keeps the later time; look-ups, keyset pages, unlink up to a time, races, durable', async (t) => {
      const { index, dir } = await fresh(t);
      await index.linkOciBlob({ name: 'repo/a', sha256: PARCEL_A, linkedAt: 1000 });
      t.equal(await index.ociBlobLinked('repo/a', PARCEL_A), true, 'linked');
      t.equal(await index.ociBlobLinked('repo/b', PARCEL_A), false, 'not in another repository');
      t.equal(await index.ociBlobLinked('repo/a', PARCEL_B), false, 'nor another blob');
      await index.linkOciBlob({ name: 'repo/a', sha256: PARCEL_A, linkedAt: 500 });
      t.same(await index.ociBlobLinks(PARCEL_A), [{ name: 'repo/a', sha256: PARCEL_A, linkedAt: 1000 }], 'an older re-link does not move the time back');
      await index.linkOciBlob({ name: 'repo/a', sha256: PARCEL_A, linkedAt: 2000 });
      await index.linkOciBlob({ name: 'repo/b', sha256: PARCEL_A, linkedAt: 1500 });
      await index.linkOciBlob({ name: 'repo/a', sha256: PARCEL_B, linkedAt: 100 });
      t.same(await index.ociBlobLinks(PARCEL_A), [
        { name: 'repo/a', sha256: PARCEL_A, linkedAt: 2000 },
        { name: 'repo/b', sha256: PARCEL_A, linkedAt: 1500 },
      ], 'a later one moves it forward; the links of a digest by name');
      t.same(await index.ociBlobLinks(PARCEL_C), [], 'none for an unlinked digest');
      const all = [
        { name: 'repo/a', sha256: PARCEL_A, linkedAt: 2000 },
        { name: 'repo/b', sha256: PARCEL_A, linkedAt: 1500 },
        { name: 'repo/a', sha256: PARCEL_B, linkedAt: 100 },
      ];
      t.same(await index.ociBlobLinkPage(undefined, 10), all, 'every link by sha256, then name');
      t.same(await index.ociBlobLinkPage(undefined, 2), all.slice(0, 2));
      t.same(await index.ociBlobLinkPage({ name: 'repo/b', sha256: PARCEL_A }, 2), all.slice(2), 'keyset pages');
      t.same(await index.ociBlobLinkPage({ name: 'repo/a', sha256: PARCEL_A }, 1), all.slice(1, 2), 'after a name within a digest');
      t.same(await index.ociBlobLinkPage(undefined, 0), []);
      await t.rejects(index.linkOciBlob({ name: 'repo/a', sha256: 'X', linkedAt: 1 }), { code: 'internal' }, 'a malformed link is refused');
      await t.rejects(index.linkOciBlob({ name: '', sha256: PARCEL_A, linkedAt: 1 }), { code: 'internal' });

      t.equal(await index.unlinkOciBlob(PARCEL_A, 1500), 1, 'unlink removes the links written at or before the time');
      t.same(await index.ociBlobLinks(PARCEL_A), [{ name: 'repo/a', sha256: PARCEL_A, linkedAt: 2000 }], 'a later link stays');
      t.equal(await index.unlinkOciBlob(PARCEL_C, 9000), 0);

      await Promise.all([3000, 5000, 4000].map((linkedAt) => index.linkOciBlob({ name: 'repo/race', sha256: PARCEL_C, linkedAt })));
      t.same(await index.ociBlobLinks(PARCEL_C), [{ name: 'repo/race', sha256: PARCEL_C, linkedAt: 5000 }], 'racing links all succeed; the latest time wins');

      await index.close();
      const reopened = await makeIndex(dir);
      t.teardown(() => reopened.close());
      t.same(await reopened.ociBlobLinkPage(undefined, 10), [
        { name: 'repo/a', sha256: PARCEL_A, linkedAt: 2000 },
        { name: 'repo/a', sha256: PARCEL_B, linkedAt: 100 },
        { name: 'repo/race', sha256: PARCEL_C, linkedAt: 5000 },
      ], 'durable across close and reopen');
    });

    t.test('OCI blob links: a hard delete removes the name\'s links to the invoice\'s parcels and config; a yank keeps them', async (t) => {
      const { index } = await fresh(t);
      const entry = makeEntry('linked/app', '1.0.0', { parcels: [PARCEL_A, PARCEL_B] });
      await index.insert(entry);
      await index.insert(makeEntry('linked/app', '2.0.0', { parcels: [PARCEL_B] }));
      const config = sha256Digest(Buffer.from(entry.toml, 'utf8')).slice('sha256:'.length);
      for (const link of [
        { name: 'linked/app', sha256: PARCEL_A }, { name: 'linked/app', sha256: PARCEL_B }, { name: 'linked/app', sha256: PARCEL_C },
        { name: 'linked/app', sha256: config }, { name: 'other/app', sha256: PARCEL_A },
      ]) await index.linkOciBlob({ ...link, linkedAt: 1000 });
      const links = async (): Promise<string[]> => (await index.ociBlobLinkPage(undefined, 100)).map((l) => `${l.name}@${l.sha256.slice(0, 4)}`).sort();
      const before = await links();
      t.equal(await index.yank(makeEntry('linked/app', '1.0.0', { parcels: [PARCEL_A, PARCEL_B], yanked: true })), true);
      t.same(await links(), before, 'a yank keeps every link');
      await index.delete(makeTombstone('linked/app', '1.0.0'));
      t.same(await links(), ['linked/app@cccc', 'other/app@aaaa'].sort(), 'its parcels\' and config\'s links in the name go (also of a parcel another version lists); others stay');
    });

    t.test('OCI: repositories are the distinct names of stored invoices, yanked too, in byte order, paged with last and n', async (t) => {
      const { index } = await fresh(t);
      for (const [name, version] of [['b/x', '1.0.0'], ['b/x', '1.1.0'], ['a', '1.0.0'], ['B', '1.0.0'], ['ä', '1.0.0'], ['y', '1.0.0'], ['gone', '1.0.0']]) {
        await index.insert(makeEntry(name ?? '', version ?? ''));
      }
      t.equal(await index.yank(makeEntry('y', '1.0.0', { yanked: true })), true);
      await index.delete(makeTombstone('gone', '1.0.0'));
      await index.linkOciBlob({ name: 'links/only', sha256: PARCEL_A, linkedAt: 1 });
      const all = ['B', 'a', 'b/x', 'y', 'ä'];
      t.same(await index.ociRepositories(undefined, 100), { names: all, more: false }, 'byte order; a name once; yanked kept; deleted and link-only names not');
      t.same(await index.ociRepositories(undefined, 2), { names: all.slice(0, 2), more: true });
      t.same(await index.ociRepositories('a', 2), { names: all.slice(2, 4), more: true });
      t.same(await index.ociRepositories('y', 2), { names: all.slice(4), more: false });
      t.same(await index.ociRepositories('b', 10), { names: all.slice(2), more: false }, 'last need not be a name');
      t.same(await index.ociRepositories('ä', 10), { names: [], more: false });
      t.same(await index.ociRepositories(undefined, 0), { names: [], more: true });
    });

    t.test('insert then get returns the entry with its exact documents', async (t) => {
      const { index } = await fresh(t);
      const entry = makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'd', authors: ['a'], parcels: [PARCEL_A] });
      // Documents are stored verbatim, never re-rendered: odd formatting must survive.
      entry.toml = `# written by hand\n${entry.toml}\n\n`;
      entry.json = JSON.stringify(entry.invoice, null, 3);
      await index.insert(entry);
      const got = await index.get('enterprise.com/warpcore', '1.0.0');
      t.ok(got, 'found');
      if (got === undefined) return;
      t.equal(got.toml, entry.toml, 'toml bytes');
      t.equal(got.json, entry.json, 'json bytes');
      t.same(got, entry);
      t.equal(await index.get('enterprise.com/warpcore', '1.0.1'), undefined, 'other version absent');
      t.equal(await index.get('enterprise.com/warp', '1.0.0'), undefined, 'other name absent');
    });

    t.test('get of a missing invoice is undefined', async (t) => {
      const { index } = await fresh(t);
      t.equal(await index.get('nothing/here', '1.0.0'), undefined);
      t.equal(await index.count(), 0);
    });

    t.test('a name/version can only be inserted once', async (t) => {
      const { index } = await fresh(t);
      await index.insert(makeEntry('dup', '1.0.0', { description: 'first' }));
      await t.rejects(index.insert(makeEntry('dup', '1.0.0', { description: 'second' })), { code: 'already_exists' });
      await index.insert(makeEntry('dup', '1.0.0+build'));
      await index.insert(makeEntry('dup', '1.0.1'));
      const yanked = makeEntry('dup', '1.0.1', { yanked: true });
      t.equal(await index.yank(yanked), true);
      await t.rejects(index.insert(makeEntry('dup', '1.0.1')), { code: 'already_exists' }, 'also when yanked');
      t.equal((await index.get('dup', '1.0.0'))?.invoice.bindle.description, 'first', 'the first insert stays');
      t.equal(await index.count(), 3);
    });

    t.test('yank replaces the documents of an unyanked invoice, once', async (t) => {
      const { index } = await fresh(t);
      const entry = makeEntry('enterprise.com/warpcore', '1.0.0', { parcels: [PARCEL_A] });
      await index.insert(entry);
      t.equal((await index.get('enterprise.com/warpcore', '1.0.0'))?.yanked, false, 'read (and maybe cached) before the yank');
      const yanked = makeEntry('enterprise.com/warpcore', '1.0.0', { parcels: [PARCEL_A], yanked: true });
      t.equal(await index.yank(yanked), true, 'this call yanked it');
      const got = await index.get('enterprise.com/warpcore', '1.0.0');
      t.equal(got?.yanked, true, 'yanked flag');
      t.equal(got?.invoice.yanked, true, 'yanked invoice');
      t.equal(got?.toml, yanked.toml, 'new toml');
      t.equal(got?.json, yanked.json, 'new json');
      t.same(await index.invoicesWithParcel(PARCEL_A), [{ name: 'enterprise.com/warpcore', version: '1.0.0', yanked: true }]);
      t.same(ids(await index.query(q(''))), [], 'hidden from queries');
      t.same(ids(await index.query(q('', { yanked: true }))), ['enterprise.com/warpcore/1.0.0'], 'shown with yanked');
      t.equal(await index.count(), 1, 'still counted');
      const again = makeEntry('enterprise.com/warpcore', '1.0.0', { parcels: [PARCEL_A], yanked: true, description: 'second yank' });
      t.equal(await index.yank(again), false, 'already yanked: compare-and-set fails');
      t.equal((await index.get('enterprise.com/warpcore', '1.0.0'))?.toml, yanked.toml, 'and writes nothing');
      await t.rejects(index.yank(makeEntry('enterprise.com/warpcore', '9.9.9', { yanked: true })), { code: 'not_found' });
      await t.rejects(index.yank(makeEntry('enterprise.com/warpcore', '1.0.0')), { code: 'internal' }, 'an unyanked entry is refused');
    });

    t.test('OCI: manifest, config and signature referrers are written with the invoice and never move', async (t) => {
      const { index } = await fresh(t);
      const entry = makeEntry('enterprise.com/warpcore', '1.0.0+build.1', { parcels: [PARCEL_A, PARCEL_B] });
      const signature = { by: 'creator', signature: 'c2ln', key: 'a2V5', role: 'creator' as const, at: 1_700_000_000 };
      const host = { ...signature, by: 'host', role: 'host' as const };
      entry.invoice = { ...entry.invoice, signature: [signature, host] };
      entry.json = JSON.stringify(entry.invoice);
      await index.insert(entry);
      const config = Buffer.from(entry.toml, 'utf8');
      const built = buildBindleManifest(config, entry.invoice);
      const manifest = await index.ociManifest(entry.name, entry.version);
      t.same(manifest, { name: entry.name, version: entry.version, yanked: false, position: 0, digest: built.digest, bytes: built.bytes }, 'the built manifest');
      t.same(await index.ociConfig(entry.name, sha256Digest(config)), config, 'the config blob is the TOML inserted');
      t.equal(await index.ociConfig('other', sha256Digest(config)), undefined, 'under its own name only');
      t.equal(await index.ociManifest(entry.name, '9.9.9'), undefined);
      const referrers = await index.ociReferrers(entry.name, built.digest);
      t.same(referrers.map((r) => r.digest), signatureReferrers(built, entry.invoice).map((r) => r.content.digest), 'one referrer per signature, in order');
      t.same(referrers.map((r) => r.position), [1, 2]);
      const second = referrers[1];
      t.same((await index.ociManifestByDigest(entry.name, second?.digest ?? ''))?.bytes, second?.bytes, 'a referrer by digest');
      t.equal((await index.ociManifestByDigest(entry.name, built.digest))?.position, 0, 'the manifest by digest');
      t.equal(await index.ociManifestByDigest('other', built.digest), undefined, 'under its own name only');
      t.same(await index.ociReferrers(entry.name, second?.digest ?? ''), [], 'a referrer has no referrers');

      t.equal(await index.yank(makeEntry(entry.name, entry.version, { parcels: [PARCEL_A, PARCEL_B], yanked: true })), true);
      const after = await index.ociManifestByDigest(entry.name, built.digest);
      t.equal(after?.yanked, true, 'yanked now');
      t.same(after?.bytes, built.bytes, 'the same bytes after the yank');
      t.equal((await index.ociManifest(entry.name, entry.version))?.digest, built.digest, 'and the same digest by version');
      t.same(await index.ociConfig(entry.name, sha256Digest(config)), config, 'the config is still the TOML at create time');
    });

    t.test('OCI: a pushed artifact is kept verbatim', async (t) => {
      const { index } = await fresh(t);
      const entry = makeEntry('pushed', '1.0.0');
      const config = Buffer.from(`# pushed by a client\n${entry.toml}`);
      const manifest = Buffer.from(`${buildBindleManifest(config, entry.invoice).bytes.toString('utf8')}\n`);
      await index.insert({ ...entry, oci: { manifest, config } });
      const got = await index.ociManifest('pushed', '1.0.0');
      t.same(got?.bytes, manifest);
      t.equal(got?.digest, sha256Digest(manifest));
      t.same(await index.ociConfig('pushed', sha256Digest(config)), config);
    });

    t.test('OCI: tags of unyanked invoices in byte order, paged with last and n', async (t) => {
      const { index } = await fresh(t);
      for (const version of ['1.10.0', '1.2.0', '1.0.0+b', '1.0.0', '2.0.0-rc.1', '0.9.0']) await index.insert(makeEntry('tagged', version));
      await index.insert(makeEntry('tagged/sub', '5.0.0'));
      await index.insert(makeEntry('gone', '1.0.0'));
      t.equal(await index.yank(makeEntry('tagged', '0.9.0', { yanked: true })), true);
      t.equal(await index.yank(makeEntry('gone', '1.0.0', { yanked: true })), true);
      const all = ['1.0.0', '1.0.0_b', '1.10.0', '1.2.0', '2.0.0-rc.1'];
      t.same(await index.ociTags('tagged', undefined, 100), { tags: all, more: false });
      t.same(await index.ociTags('tagged', undefined, 2), { tags: all.slice(0, 2), more: true });
      t.same(await index.ociTags('tagged', '1.0.0_b', 2), { tags: all.slice(2, 4), more: true });
      t.same(await index.ociTags('tagged', '1.2.0', 2), { tags: all.slice(4), more: false });
      t.same(await index.ociTags('tagged', '9', 2), { tags: [], more: false });
      t.same(await index.ociTags('tagged', undefined, 0), { tags: [], more: true });
      t.same(await index.ociTags('gone', undefined, 10), { tags: [], more: false }, 'only yanked: no tags');
      t.equal(await index.ociTags('nothing', undefined, 10), undefined, 'unknown name');
    });

    t.test('delete removes the invoice and leaves a tombstone that refuses a re-create', async (t) => {
      const { index } = await fresh(t);
      await index.insert(makeEntry('gone/soon', '1.0.0', { parcels: [PARCEL_A, PARCEL_B], description: 'first' }));
      await index.insert(makeEntry('gone/soon', '1.0.1', { parcels: [PARCEL_A] }));
      t.equal((await index.get('gone/soon', '1.0.0'))?.version, '1.0.0', 'read (and maybe cached) before the delete');
      t.equal(await index.tombstone('gone/soon', '1.0.0'), undefined, 'no tombstone before');
      const tombstone = makeTombstone('gone/soon', '1.0.0');
      await index.delete(tombstone);
      t.equal(await index.get('gone/soon', '1.0.0'), undefined, 'the invoice is gone');
      t.equal(await index.ociManifest('gone/soon', '1.0.0'), undefined, 'and its OCI manifest');
      t.same(await index.tombstone('gone/soon', '1.0.0'), tombstone, 'the tombstone is stored as given');
      t.same(await index.invoicesWithParcel(PARCEL_B), [], 'its parcels are no longer referenced by it');
      t.same(await index.invoicesWithParcel(PARCEL_A), [{ name: 'gone/soon', version: '1.0.1', yanked: false }], 'other invoices still are');
      t.equal(await index.count(), 1);
      t.same(ids(await index.query(q('gone', { yanked: true }))), ['gone/soon/1.0.1'], 'gone from queries');
      await t.rejects(index.insert(makeEntry('gone/soon', '1.0.0')), { code: 'deleted' }, 'a re-create is refused');
      await t.rejects(index.delete(tombstone), { code: 'not_found' }, 'a second delete is not_found');
      await t.rejects(index.delete(makeTombstone('never/was', '1.0.0')), { code: 'not_found' });
      t.equal(await index.tombstone('never/was', '1.0.0'), undefined, 'a failed delete writes no tombstone');
      await index.insert(makeEntry('gone/soon', '1.0.0', { description: 'again' }), { replaceTombstone: true });
      t.equal((await index.get('gone/soon', '1.0.0'))?.invoice.bindle.description, 'again', 'an admin re-create replaces it');
      t.equal(await index.tombstone('gone/soon', '1.0.0'), undefined, 'and removes the tombstone');
      await index.delete(makeTombstone('gone/soon', '1.0.0', '{"second":true}'));
      t.equal((await index.tombstone('gone/soon', '1.0.0'))?.record, '{"second":true}', 'a later delete replaces the tombstone');
      await t.rejects(index.delete({ ...makeTombstone('gone/soon', '1.0.1'), canonicalId: 'x' }), { code: 'internal' });
      t.equal((await index.get('gone/soon', '1.0.1'))?.version, '1.0.1', 'a bad tombstone deletes nothing');
    });

    t.test('a listed parcel keeps its label size: another size is size_mismatch, nothing written; equal sizes pass; deleted invoices no longer count', async (t) => {
      const { index } = await fresh(t);
      await index.insert(makeEntry('size/m', '1.0.0', { parcels: [PARCEL_D], sizes: [7] }));
      await t.rejects(
        index.insert(makeEntry('size/n', '1.0.0', { parcels: [PARCEL_A, PARCEL_D], sizes: [5, 6] })),
        { code: 'size_mismatch', message: new RegExp(`size/n/1\\.0\\.0 gives parcel ${PARCEL_D} 6 bytes, but invoice size/m/1\\.0\\.0 lists it with 7 bytes`) },
      );
      t.equal(await index.get('size/n', '1.0.0'), undefined, 'the refused invoice is not stored');
      t.equal(await index.ociManifest('size/n', '1.0.0'), undefined, 'nor its OCI rows');
      t.same(await index.invoicesWithParcel(PARCEL_A), [], 'nor its other parcels');
      t.equal(await index.count(), 1);
      await index.insert(makeEntry('size/n', '1.0.0', { parcels: [PARCEL_A, PARCEL_D], sizes: [5, 7] }));
      t.same((await index.invoicesWithParcel(PARCEL_D)).map((i) => i.name), ['size/m', 'size/n'], 'the same size is accepted');
      await index.insert(makeEntry('size/o', '1.0.0', { parcels: [PARCEL_D, PARCEL_D], sizes: [7, 7] }));
      await t.rejects(index.insert(makeEntry('size/p', '1.0.0', { parcels: [PARCEL_B, PARCEL_B], sizes: [1, 2] })), { code: 'size_mismatch' }, 'an invoice disagreeing with itself');
      t.equal(await index.yank(makeEntry('size/m', '1.0.0', { parcels: [PARCEL_D], sizes: [7], yanked: true })), true);
      await t.rejects(index.insert(makeEntry('size/q', '1.0.0', { parcels: [PARCEL_D], sizes: [6] })), { code: 'size_mismatch' }, 'a yanked invoice still counts');
      for (const name of ['size/m', 'size/n', 'size/o']) await index.delete(makeTombstone(name, '1.0.0'));
      await index.insert(makeEntry('size/q', '1.0.0', { parcels: [PARCEL_D], sizes: [6] }));
      t.equal((await index.get('size/q', '1.0.0'))?.invoice.parcel?.[0]?.label.size, 6, 'hard-deleted invoices no longer count');
      await t.rejects(index.insert(makeEntry('size/r', '1.0.0', { parcels: [PARCEL_D], sizes: [7] })), { code: 'size_mismatch', message: /size\/q\/1\.0\.0 lists it with 6 bytes/ });
    });

    t.test('instances on one store: of racing inserts giving a new parcel different sizes exactly one wins', async (t) => {
      const { index, dir } = await fresh(t);
      const other = await makeIndex(dir);
      t.teardown(() => other.close());
      for (let round = 0; round < 8; round++) {
        const parcel = `${round}`.repeat(64);
        const inserts = await Promise.allSettled(
          [index, other, index, other].map((ix, i) => ix.insert(makeEntry(`race/size${i}`, `1.0.${round}`, { parcels: [parcel], sizes: [i] }))),
        );
        t.equal(inserts.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}: one insert wins`);
        for (const r of inserts) {
          if (r.status === 'rejected') t.match(r.reason, { code: 'size_mismatch' }, `round ${round}: the others get size_mismatch`);
        }
        t.equal((await other.invoicesWithParcel(parcel)).length, 1, `round ${round}: one invoice lists the parcel`);
      }
    });

    t.test('lookup gives the invoice, else its tombstone, else undefined, and follows yank, delete and re-create', async (t) => {
      const { index } = await fresh(t);
      const entry = makeEntry('look/up', '1.0.0', { parcels: [PARCEL_A] });
      await index.insert(entry);
      t.equal(await index.lookup('look/up', '2.0.0'), undefined, 'neither invoice nor tombstone');
      const found = await index.lookup('look/up', '1.0.0');
      t.ok(found !== undefined && !isTombstone(found), 'the invoice');
      t.same(found, entry, 'as get() gives it');
      t.same(await index.lookup('look/up', '1.0.0'), entry, 'again (maybe cached)');
      const yanked = makeEntry('look/up', '1.0.0', { parcels: [PARCEL_A], yanked: true });
      await index.yank(yanked);
      const now = await index.lookup('look/up', '1.0.0');
      t.ok(now !== undefined && !isTombstone(now) && now.toml === yanked.toml, 'a yanked invoice, as it is now');
      const tombstone = makeTombstone('look/up', '1.0.0');
      await index.delete(tombstone);
      const deleted = await index.lookup('look/up', '1.0.0');
      t.ok(deleted !== undefined && isTombstone(deleted), 'after a hard delete: the tombstone');
      t.same(deleted, tombstone, 'as tombstone() gives it');
      await index.insert(makeEntry('look/up', '1.0.0', { description: 'again' }), { replaceTombstone: true });
      const again = await index.lookup('look/up', '1.0.0');
      t.ok(again !== undefined && !isTombstone(again) && again.invoice.bindle.description === 'again', 'a re-create replaces the tombstone');
    });

    t.test('cachedInvoice, where an index has it, never gives what lookup would not', async (t) => {
      const { index } = await fresh(t);
      const cachedInvoice = index.cachedInvoice?.bind(index);
      if (cachedInvoice === undefined) {
        t.pass('this index keeps no cache: lookup answers every read');
        return;
      }
      /** What cachedInvoice gives now: nothing, or exactly what lookup gives. */
      const agrees = async (what: string): Promise<StoredInvoice | undefined> => {
        const cached = cachedInvoice('cache/d', '1.0.0');
        if (cached !== undefined) t.same(cached, await index.lookup('cache/d', '1.0.0'), `${what}: as lookup gives it`);
        return cached;
      };
      t.equal(await agrees('never stored'), undefined, 'nothing for an absent id');
      const entry = makeEntry('cache/d', '1.0.0', { parcels: [PARCEL_A] });
      await index.insert(entry);
      await agrees('stored');
      await index.lookup('cache/d', '1.0.0');
      t.same(await agrees('looked up'), entry, 'a looked-up invoice is cached');
      await index.yank(makeEntry('cache/d', '1.0.0', { parcels: [PARCEL_A], yanked: true }));
      t.not((await agrees('yanked'))?.yanked, false, 'never the invoice as it was before the yank');
      await index.lookup('cache/d', '1.0.0');
      await index.delete(makeTombstone('cache/d', '1.0.0'));
      t.equal(await agrees('deleted'), undefined, 'nothing once deleted (a tombstone is never cached)');
      await index.lookup('cache/d', '1.0.0');
      t.equal(cachedInvoice('cache/d', '1.0.0'), undefined, 'nor after the tombstone was looked up');
      await index.insert(makeEntry('cache/d', '1.0.0', { description: 'again' }), { replaceTombstone: true });
      await index.lookup('cache/d', '1.0.0');
      t.equal((await agrees('re-created'))?.invoice.bindle.description, 'again', 'the re-created invoice');
      t.equal(cachedInvoice('cache/d', '2.0.0'), undefined, 'nothing for another version');
    });

    t.test('tombstones() lists them in order; addTombstone stores one for an id without an invoice', async (t) => {
      const { index } = await fresh(t);
      t.same(await index.tombstones(), []);
      await index.insert(makeEntry('b/gone', '1.0.0'));
      await index.insert(makeEntry('a/gone', '2.0.0'));
      await index.delete(makeTombstone('b/gone', '1.0.0'));
      await index.delete(makeTombstone('a/gone', '2.0.0'));
      t.same(await index.tombstones(), [makeTombstone('a/gone', '2.0.0'), makeTombstone('b/gone', '1.0.0')]);
      const copied = makeTombstone('c/copied', '1.0.0', '{"copied":true}');
      t.equal(await index.addTombstone(copied), true, 'written');
      t.equal(await index.addTombstone(makeTombstone('c/copied', '1.0.0', '{"again":true}')), false, 'a second time: nothing written');
      t.same(await index.tombstone('c/copied', '1.0.0'), copied);
      await t.rejects(index.insert(makeEntry('c/copied', '1.0.0')), { code: 'deleted' }, 'it refuses a re-create');
      await index.insert(makeEntry('d/live', '1.0.0'));
      await t.rejects(index.addTombstone(makeTombstone('d/live', '1.0.0')), { code: 'already_exists' }, 'not for an id an invoice holds');
      t.equal(await index.tombstone('d/live', '1.0.0'), undefined);
    });

    t.test('a delete through one instance is seen by another within 3 s; racing deletes have one winner', async (t) => {
      const { index, dir } = await fresh(t);
      const other = await makeIndex(dir);
      t.teardown(() => other.close());
      await index.insert(makeEntry('gone/soon', '1.0.0'));
      for (let i = 0; i < 3; i++) t.equal((await other.get('gone/soon', '1.0.0'))?.version, '1.0.0');
      const deletes = await Promise.allSettled([index, other, index, other].map((ix) => ix.delete(makeTombstone('gone/soon', '1.0.0'))));
      t.equal(deletes.filter((r) => r.status === 'fulfilled').length, 1, 'one delete wins');
      for (const r of deletes) if (r.status === 'rejected') t.match(r.reason, { code: 'not_found' }, 'the others are not_found');
      const deadline = Date.now() + 3000;
      let gone = false;
      while (!gone && Date.now() < deadline) {
        gone = (await other.get('gone/soon', '1.0.0')) === undefined;
        if (!gone) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      t.ok(gone, 'the other instance stops serving it within 3 s (loose for a loaded machine)');
      await t.rejects(other.insert(makeEntry('gone/soon', '1.0.0')), { code: 'deleted' }, 'and refuses a re-create');
    });

    t.test('instances on one store: racing inserts and yanks each have exactly one winner', async (t) => {
      const { index, dir } = await fresh(t);
      const other = await makeIndex(dir);
      t.teardown(() => other.close());
      const rounds = 8;
      for (let round = 0; round < rounds; round++) {
        const version = `1.0.${round}`;
        const inserts = await Promise.allSettled(
          [index, other, index, other].map((ix, i) => ix.insert(makeEntry('race/me', version, { description: `writer ${i}` }))),
        );
        t.equal(inserts.filter((r) => r.status === 'fulfilled').length, 1, `${version}: one insert wins`);
        for (const r of inserts) {
          if (r.status === 'rejected') t.match(r.reason, { code: 'already_exists' }, `${version}: the others get already_exists`);
        }
        const winner = (await other.get('race/me', version))?.invoice.bindle.description;
        const yanks = await Promise.all(
          [index, other, other, index].map((ix) => ix.yank(makeEntry('race/me', version, { description: winner ?? '', yanked: true }))),
        );
        t.equal(yanks.filter((won) => won).length, 1, `${version}: one yank wins`);
      }
      t.equal(await index.count(), rounds);
      t.equal((await index.query(q('race', { yanked: true }))).total, rounds);
      t.equal((await other.query(q('race'))).total, 0, 'all yanked');
    });

    t.test('a yank through one instance is seen by another instance within 3 s (loose for a loaded machine; typically well under 1 s)', async (t) => {
      const { index, dir } = await fresh(t);
      const other = await makeIndex(dir);
      t.teardown(() => other.close());
      await index.insert(makeEntry('enterprise.com/warpcore', '1.0.0'));
      // The other instance reads it first, so a cache would hold the unyanked invoice.
      for (let i = 0; i < 3; i++) t.equal((await other.get('enterprise.com/warpcore', '1.0.0'))?.yanked, false);
      t.equal(await index.yank(makeEntry('enterprise.com/warpcore', '1.0.0', { yanked: true })), true);
      const deadline = Date.now() + 3000;
      let seen = false;
      while (!seen && Date.now() < deadline) {
        seen = (await other.get('enterprise.com/warpcore', '1.0.0'))?.yanked === true;
        if (!seen) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      t.ok(seen, 'the other instance serves the yank within 3 s (the bound is loose for a loaded machine; expected well under 1 s)');
    });

    t.test('data survives close and reopen', async (t) => {
      const dir = t.testdir();
      const first = await makeIndex(dir);
      for (const entry of SEED) await first.insert(entry);
      await first.yank(makeEntry('enterprise.com/warpcore', '1.10.0', { yanked: true }));
      await first.close();
      const second = await makeIndex(dir);
      t.teardown(() => second.close());
      t.equal(await second.count(), SEED.length);
      t.same(await second.get('example.com/Käse', '1.0.0'), SEED.find((e) => e.name === 'example.com/Käse'));
      t.equal((await second.get('enterprise.com/warpcore', '1.10.0'))?.yanked, true, 'the yank survived');
      t.same(
        ids(await second.query(q('warp', { strict: true }))),
        ALL_IN_ORDER.filter((id) => id.includes('warp') && id !== 'enterprise.com/warpcore/1.10.0'),
      );
      t.same(ids(await second.query(q('scott'))), ['enterprise.com/warpcore/1.0.0'], 'standard search survived');
      await second.insert(makeEntry('after/reopen', '1.0.0'));
      t.equal(await second.count(), SEED.length + 1, 'writable after reopen');
    });

    t.test('range filtering agrees with semver.satisfies', async (t) => {
      const { index } = await fresh(t);
      const versions: string[] = [];
      for (const major of [0, 1, 2, 3, 10]) {
        for (const minor of [0, 1, 2, 9, 10]) {
          for (const patch of [0, 1, 3]) versions.push(`${major}.${minor}.${patch}`);
        }
        versions.push(`${major}.0.0-alpha`, `${major}.1.0-rc.1`, `${major}.2.3-beta.2`, `${major}.2.3-beta.11`, `${major}.2.9-rc.1`, `${major}.2.3+build`);
      }
      // Numbers the semver package cannot hold exactly (checked by semver itself, not by key).
      versions.push('1.0.0-9999999999999999999', '1.2.3-1234567890123456', '1.2.3-alpha.9007199254740993', '99999999999999999999.0.0');
      for (const v of versions) await index.insert(makeEntry('r', v));
      const ranges = [
        '^1.2.0', '~1.2.0', '1.x', '1 - 2.1', '>1.2.3', '>=1.2.3 <1.9.9', '<=2.1.0', '<2.0.0-0', '^0.1.0', '^0.0.3',
        '>=3.0.0-alpha', '~2.2.3-beta.1', '>1.1.0 <1.3.0 || 10.x', '*', '>=0.0.0-0', '=2.9.3', '0.x || >=10.10.0',
        '>=1.0.0-0 <1.0.1', '>=1.2.3-alpha', '>1.2.3-alpha.5', '^1.2.3-beta.1', '>=1.2.3-alpha <1.2.3-beta.5 || 3.x', '<=1.2.3-beta.11', '1.2.3-beta.2 - 1.2.3',
        '>1.2.2 <1.2.3-beta.5', // semver.minVersion says null, yet 1.2.3-beta.2 satisfies it
        '<0.0.0-0',
      ];
      for (const range of ranges) {
        const want = versions.filter((v) => semver.satisfies(v, range)).sort();
        const got = await index.query({ query: '', version: range, offset: 0, limit: 255, strict: false, yanked: false });
        t.same(got.invoices.map((i) => i.version).sort(), want, range);
        t.equal(got.total, want.length, `${range} total`);
        // A small page: the query may walk the order index instead of sorting the matches.
        const ordered = [...want].sort((a, b) => semver.rcompare(a, b) || (a < b ? -1 : a > b ? 1 : 0));
        const page = await index.query({ query: '', version: range, offset: 2, limit: 3, strict: false, yanked: false });
        t.same(page.invoices.map((i) => i.version), ordered.slice(2, 5), `${range} page`);
      }
    });

    t.test('small pages (order-index walk) agree with the full result (sorted matches)', async (t) => {
      const { index } = await fresh(t);
      const words = ['alpha', 'beta', 'gamma', 'delta'];
      for (let i = 0; i < 60; i++) {
        const name = `${words[i % 4] ?? ''}.example/${words[(i >> 2) % 4] ?? ''}-${i % 7}`;
        await index.insert(makeEntry(name, `1.${i % 3}.${i}`, { description: `${words[(i * 3) % 4] ?? ''} module`, yanked: i % 9 === 0 }));
      }
      const queries = [
        { query: 'alpha', strict: true },
        { query: 'ph ex', strict: true },
        { query: 'gamma', strict: false },
        { query: 'DELTA module', strict: false },
        { query: 'a', strict: false },
      ];
      for (const shape of queries) {
        for (const yanked of [false, true]) {
          const label = `${JSON.stringify(shape)} yanked=${String(yanked)}`;
          const full = await index.query({ ...shape, yanked, offset: 0, limit: 255 });
          const fullIds = full.invoices.map((i) => `${i.name}/${i.version}`);
          t.ok(full.total > 4, `${label} matches several`);
          for (const limit of [1, 2, 5]) {
            for (let offset = 0; offset < full.total + 2; offset += 3) {
              const page = await index.query({ ...shape, yanked, offset, limit });
              t.equal(page.total, full.total, `${label} total at ${offset}/${limit}`);
              t.same(page.invoices.map((i) => `${i.name}/${i.version}`), fullIds.slice(offset, offset + limit), `${label} page ${offset}/${limit}`);
            }
          }
        }
      }
    });

    t.test('queries', async (t) => {
      const { index } = await fresh(t);
      for (const entry of SEED) await index.insert(entry);

      t.test('count includes yanked invoices', async (t) => {
        t.equal(await index.count(), SEED.length);
      });

      t.test('empty query: everything, name ascending then SemVer descending', async (t) => {
        const all = await index.query(q(''));
        t.same(ids(all), ALL_IN_ORDER);
        t.equal(all.total, ALL_IN_ORDER.length);
        t.same(ids(await index.query(q('  ', { strict: true }))), ALL_IN_ORDER, 'blank strict query');
      });

      t.test('yanked invoices only with yanked: true', async (t) => {
        const withYanked = await index.query(q('', { yanked: true }));
        t.equal(withYanked.total, SEED.length);
        t.same(ids(withYanked).slice(1, 3), ['enterprise.com/transporter/1.2.0', 'enterprise.com/transporter/0.3.0']);
        t.equal(withYanked.invoices[2]?.yanked, true);
        t.same(ids(await index.query(q('transporter', { strict: true }))), ['enterprise.com/transporter/1.2.0']);
        t.equal((await index.query(q('transporter', { strict: true }))).total, 1, 'total without yanked');
        t.equal((await index.query(q('transporter', { strict: true, yanked: true }))).total, 2, 'total with yanked');
        t.equal((await index.query(q('enterprise'))).total, 9, 'standard total without yanked');
        t.same(ids(await index.query(q('transporter', { strict: true, yanked: true }))), [
          'enterprise.com/transporter/1.2.0',
          'enterprise.com/transporter/0.3.0',
        ]);
      });

      t.test('strict: every term is a case-sensitive substring of the name', async (t) => {
        const warp = ALL_IN_ORDER.filter((id) => id.includes('warpcore'));
        t.same(ids(await index.query(q('warp', { strict: true }))), warp);
        t.same(ids(await index.query(q('warp enterprise', { strict: true }))), warp.filter((id) => id.startsWith('enterprise')));
        t.same(ids(await index.query(q('enterprise warp ager', { strict: true }))), [], 'all terms must match');
        t.same(ids(await index.query(q('Warp', { strict: true }))), [], 'case-sensitive');
        t.same(ids(await index.query(q('ort', { strict: true }))), ['enterprise.com/transporter/1.2.0']);
        t.same(ids(await index.query(q('Käse', { strict: true }))), ['example.com/Käse/1.0.0']);
        t.same(ids(await index.query(q('käse', { strict: true }))), []);
        t.same(ids(await index.query(q('ab', { strict: true }))), ['ab/0.1.0'], 'short term');
        t.same(ids(await index.query(q('a', { strict: true }))), ALL_IN_ORDER, 'one-letter term');
        t.same(ids(await index.query(q('m/t  sp', { strict: true }))), ['enterprise.com/transporter/1.2.0'], 'long and short terms');
        t.same(ids(await index.query(q('beams', { strict: true }))), [], 'description is not searched');
        t.same(ids(await index.query(q('1.0.0', { strict: true }))), [], 'version is not searched');
        t.same(ids(await index.query(q('"warp', { strict: true }))), [], 'quotes are literal');
        t.same(ids(await index.query(q('%', { strict: true }))), [], 'wildcards are literal');
      });

      t.test('standard: terms AND-ed over name, version, description, authors, case-insensitive', async (t) => {
        t.same(ids(await index.query(q('beams'))), ['enterprise.com/transporter/1.2.0'], 'description');
        t.same(ids(await index.query(q('BEAMS PEOPLE'))), ['enterprise.com/transporter/1.2.0'], 'upper case');
        t.same(ids(await index.query(q('scott'))), ['enterprise.com/warpcore/1.0.0'], 'author');
        t.same(ids(await index.query(q('forge scott'))), ['enterprise.com/warpcore/1.0.0'], 'two authors');
        t.same(ids(await index.query(q('1.10'))), ['enterprise.com/warpcore/1.10.0'], 'version');
        t.same(ids(await index.query(q('warp slipstream'))), ['voyager.com/warpcore/3.1.4'], 'name and description');
        t.same(ids(await index.query(q('WARPCORE 2.0.0-A'))), ['enterprise.com/warpcore/2.0.0-alpha.1', 'enterprise.com/warpcore/2.0.0-alpha']);
        t.same(ids(await index.query(q('käse'))), ['example.com/Käse/1.0.0'], 'unicode name');
        t.same(ids(await index.query(q('KÄTHE'))), ['example.com/Käse/1.0.0'], 'unicode case folding');
        t.same(ids(await index.query(q('ti'))), ['ab/0.1.0'], 'short term');
        t.same(ids(await index.query(q('warp nothing-matches'))), [], 'all terms must match');
        t.same(ids(await index.query(q('"'))), [], 'quote');
        t.same(ids(await index.query(q('_'))), [], 'wildcards are literal');
        t.equal((await index.query(q('warpcore'))).total, 9);
      });

      t.test('version: exact match', async (t) => {
        t.same(ids(await index.query(q('', { version: '1.0.0' }))), ['enterprise.com/warpcore/1.0.0', 'example.com/Käse/1.0.0']);
        t.same(ids(await index.query(q('', { version: '2.0.0-beta' }))), ['enterprise.com/warpcore/2.0.0-beta']);
        t.same(ids(await index.query(q('warp', { version: '1.0.0', strict: true }))), ['enterprise.com/warpcore/1.0.0']);
        t.same(ids(await index.query(q('', { version: '1.0.1' }))), []);
        t.same(ids(await index.query(q('', { version: '0.3.0' }))), [], 'yanked version hidden');
        t.same(ids(await index.query(q('', { version: '0.3.0', yanked: true }))), ['enterprise.com/transporter/0.3.0']);
        t.same(ids(await index.query(q('', { version: '' }))), ALL_IN_ORDER, 'empty version = no filter');
      });

      t.test('version: npm-style ranges', async (t) => {
        t.same(ids(await index.query(q('warpcore', { version: '^1.0.0', strict: true }))), [
          'enterprise.com/warpcore/1.10.0',
          'enterprise.com/warpcore/1.9.0',
          'enterprise.com/warpcore/1.2.5',
          'enterprise.com/warpcore/1.0.0',
        ]);
        t.same(ids(await index.query(q('', { version: '>=1.2 <2' }))), [
          'enterprise.com/transporter/1.2.0',
          'enterprise.com/warpcore/1.10.0',
          'enterprise.com/warpcore/1.9.0',
          'enterprise.com/warpcore/1.2.5',
        ]);
        t.same(ids(await index.query(q('', { version: '1.x' }))), [
          'enterprise.com/transporter/1.2.0',
          'enterprise.com/warpcore/1.10.0',
          'enterprise.com/warpcore/1.9.0',
          'enterprise.com/warpcore/1.2.5',
          'enterprise.com/warpcore/1.0.0',
          'example.com/Käse/1.0.0',
        ]);
        t.same(ids(await index.query(q('', { version: '>=2.0.0-alpha.1' }))), [
          'enterprise.com/warpcore/2.0.0',
          'enterprise.com/warpcore/2.0.0-beta',
          'enterprise.com/warpcore/2.0.0-alpha.1',
          'voyager.com/warpcore/3.1.4',
        ], 'prereleases of the same major.minor.patch');
        t.same(ids(await index.query(q('', { version: '<1.0.0 || >=3' }))), ['ab/0.1.0', 'voyager.com/warpcore/3.1.4']);
        t.same(ids(await index.query(q('', { version: '<1.0.0 || >=3', yanked: true }))), [
          'ab/0.1.0',
          'enterprise.com/transporter/0.3.0',
          'voyager.com/warpcore/3.1.4',
        ]);
        t.same(ids(await index.query(q('', { version: '~1.2.0' }))), ['enterprise.com/transporter/1.2.0', 'enterprise.com/warpcore/1.2.5']);
        t.same(ids(await index.query(q('', { version: '*' }))), ALL_IN_ORDER.filter((id) => !/-[a-z]/.test(id)), '* skips prereleases');
        t.same(ids(await index.query(q('', { version: '<0.0.0-0' }))), [], 'a range nothing satisfies');
        t.same(ids(await index.query(q('beams', { version: '^1.2.0' }))), ['enterprise.com/transporter/1.2.0'], 'with terms');
        const page = await index.query(q('', { version: '1.x', offset: 2, limit: 2 }));
        t.same(ids(page), ['enterprise.com/warpcore/1.9.0', 'enterprise.com/warpcore/1.2.5'], 'paged range');
        t.equal(page.total, 6);
      });

      t.test('invalid ranges and paging are invalid_query', async (t) => {
        for (const version of ['banana', '^^1', '1.2.3.4', '>=x.y']) {
          await t.rejects(index.query(q('', { version })), { code: 'invalid_query', message: /invalid SemVer range/ }, version);
        }
        for (const bad of [{ limit: 0 }, { limit: 256 }, { limit: 1.5 }, { offset: -1 }, { offset: 0.5 }]) {
          await t.rejects(index.query(q('', bad)), { code: 'invalid_query' }, JSON.stringify(bad));
        }
      });

      t.test('paging: offset/limit over a stable order, total of all matches', async (t) => {
        const pages: string[] = [];
        for (let offset = 0; offset < ALL_IN_ORDER.length; offset += 5) {
          const page = await index.query(q('', { offset, limit: 5 }));
          t.equal(page.total, ALL_IN_ORDER.length, `total at offset ${offset}`);
          t.ok(page.invoices.length <= 5);
          pages.push(...ids(page));
        }
        t.same(pages, ALL_IN_ORDER, 'pages concatenate to the full list');
        const last = await index.query(q('', { offset: 11, limit: 5 }));
        t.same(ids(last), ['voyager.com/warpcore/3.1.4']);
        t.equal(last.total, 12);
        const past = await index.query(q('', { offset: 100, limit: 5 }));
        t.same(past.invoices, []);
        t.equal(past.total, 12, 'total also past the end');
        const one = await index.query(q('warpcore', { offset: 3, limit: 1, strict: true }));
        t.same(ids(one), ['enterprise.com/warpcore/2.0.0-alpha']);
        t.equal(one.total, 9);
        const full = await index.query(q('', { limit: 255 }));
        t.equal(full.invoices.length, 12);
      });

      t.test('results carry the stored documents', async (t) => {
        const [hit] = (await index.query(q('scott'))).invoices;
        const seeded = SEED.find((e) => e.version === '1.0.0' && e.name === 'enterprise.com/warpcore');
        t.same(hit, seeded);
      });

      t.test('invoicesWithParcel lists every invoice with that digest', async (t) => {
        t.same(await index.invoicesWithParcel(PARCEL_A), [
          { name: 'enterprise.com/warpcore', version: '1.9.0', yanked: false },
          { name: 'enterprise.com/warpcore', version: '1.0.0', yanked: false },
        ], 'once per invoice, also when listed twice');
        t.same(await index.invoicesWithParcel(PARCEL_B), [
          { name: 'enterprise.com/transporter', version: '1.2.0', yanked: false },
          { name: 'enterprise.com/warpcore', version: '1.0.0', yanked: false },
        ]);
        t.same(await index.invoicesWithParcel(PARCEL_C), [{ name: 'enterprise.com/transporter', version: '0.3.0', yanked: true }]);
        t.same(await index.invoicesWithParcel(PARCEL_D), []);
      });
    });
  });
}

/** An index with the bulk insert SqliteInvoiceIndex and PostgresInvoiceIndex both offer (not part of InvoiceIndex). */
export interface BulkInsertIndex extends InvoiceIndex {
  insertMany(entries: readonly StoredInvoice[], options?: { replaceTombstone?: boolean }): Promise<void>;
}

/**
 * The bulk insert's contract: every entry in one transaction, or none; each entry stored exactly
 * as `insert` stores it (documents, parcels, OCI rows); tombstones treated as by `insert`.
 */
export function insertManyContract(t: Test, name: string, makeIndex: (dir: string) => Promise<BulkInsertIndex>): void {
  t.test(`${name}: insertMany`, async (t) => {
    const index = await makeIndex(t.testdir());
    t.teardown(() => index.close());
    const batch = [
      makeEntry('enterprise.com/warpcore', '2.0.0', { parcels: [PARCEL_B] }),
      makeEntry('enterprise.com/warpcore', '1.0.0', { description: 'The warp core', parcels: [PARCEL_A, PARCEL_B, PARCEL_A] }),
      makeEntry('voyager.com/warpcore', '3.1.4', { yanked: true, parcels: [PARCEL_C] }),
    ];
    await index.insertMany(batch);
    t.equal(await index.count(), 3);
    for (const entry of batch) {
      t.same(await index.get(entry.name, entry.version), entry, `${entry.name}/${entry.version} is stored as given`);
      t.equal((await index.ociManifest(entry.name, entry.version))?.digest, buildBindleManifest(Buffer.from(entry.toml), entry.invoice).digest, 'with its own OCI manifest');
    }
    t.same(await index.invoicesWithParcel(PARCEL_B), [
      { name: 'enterprise.com/warpcore', version: '2.0.0', yanked: false },
      { name: 'enterprise.com/warpcore', version: '1.0.0', yanked: false },
    ], 'each invoice with its own parcels');
    t.same(await index.invoicesWithParcel(PARCEL_C), [{ name: 'voyager.com/warpcore', version: '3.1.4', yanked: true }]);
    t.same(ids(await index.query(q('the warp'))), ['enterprise.com/warpcore/1.0.0'], 'searchable by its description');
    await index.insertMany([]);
    t.equal(await index.count(), 3, 'an empty batch writes nothing');

    await t.rejects(
      index.insertMany([makeEntry('enterprise.com/warpcore', '3.0.0'), makeEntry('enterprise.com/warpcore', '1.0.0')]),
      { code: 'already_exists', message: /enterprise\.com\/warpcore\/1\.0\.0/ },
    );
    t.equal(await index.count(), 3, 'nothing of the failed batch stays');
    t.equal(await index.get('enterprise.com/warpcore', '3.0.0'), undefined);
    await t.rejects(index.insertMany([makeEntry('enterprise.com/x', '1.0.0'), makeEntry('enterprise.com/x', '1.0.0')]), { code: 'already_exists' }, 'a batch holding one id twice');
    await t.rejects(index.insertMany([makeEntry('enterprise.com/y', '1.0.0'), makeEntry('enterprise.com/y', 'one')]), { code: 'invalid_version' }, 'a bad entry');
    t.equal(await index.count(), 3);

    await t.rejects(
      index.insertMany([makeEntry('size/a', '1.0.0', { parcels: [PARCEL_D], sizes: [1] }), makeEntry('size/b', '1.0.0', { parcels: [PARCEL_D], sizes: [2] })]),
      { code: 'size_mismatch', message: /size\/b\/1\.0\.0 gives parcel \w+ 2 bytes, but invoice size\/a\/1\.0\.0 lists it with 1 bytes/ },
      'entries of one batch giving a parcel different sizes',
    );
    await t.rejects(index.insertMany([makeEntry('size/c', '1.0.0', { parcels: [PARCEL_B], sizes: [3] })]), { code: 'size_mismatch' }, 'an entry disagreeing with a stored invoice');
    t.equal(await index.count(), 3, 'nothing of a refused batch stays');

    await index.delete(makeTombstone('enterprise.com/warpcore', '2.0.0'));
    await t.rejects(index.insertMany([makeEntry('enterprise.com/z', '1.0.0'), makeEntry('enterprise.com/warpcore', '2.0.0')]), { code: 'deleted' });
    t.equal(await index.get('enterprise.com/z', '1.0.0'), undefined, 'a tombstone refuses the whole batch');
    await index.insertMany([makeEntry('enterprise.com/z', '1.0.0'), makeEntry('enterprise.com/warpcore', '2.0.0')], { replaceTombstone: true });
    t.equal(await index.tombstone('enterprise.com/warpcore', '2.0.0'), undefined, 'replaceTombstone removes it');
    t.equal(await index.count(), 4);
  });
}
