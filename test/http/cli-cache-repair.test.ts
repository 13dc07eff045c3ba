/**
 * The CLI's parcel cache is checked, not trusted: `bindle get` re-hashes each cached parcel,
 * reuses an intact one without a request, and downloads a corrupt one again (even one of the
 * right size), saying so on stderr; `get-parcel` removes a corrupt cached copy it finds; with
 * the server down, a cache holding a corrupt parcel is not used. Run in-process against a real
 * Bindle server whose requests are recorded.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { publicKeyEntry } from '../../core/signing/keys.js';
import { BindleClient } from '../../client/lib/bindle-client.js';
import { creatorKey, sha256, signedInvoice } from '../helpers/bindles.js';
import { inProcessCli } from '../helpers/cli-in-process.js';
import { recordingLogger } from '../helpers/log-records.js';
import { makeTestApp } from '../helpers/test-app.js';

const ID = 'example.com/app/1.0.0';
const SMALL = Buffer.from('a small parcel\n');
// Over SMALL_PARCEL_BYTES: checked by streaming, downloaded on its own.
const LARGE = Buffer.alloc(200 * 1024, 'large parcel bytes ');

/** The same number of bytes, one of them changed. */
function corrupted(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  copy[copy.length >> 1] = (copy[copy.length >> 1] ?? 0) ^ 0xff;
  return copy;
}

/** A recorded server holding example.com/app/1.0.0 and a CLI trusting it, with its cache paths. */
async function setup(t: Test) {
  const dir = t.testdir();
  const { logger, records } = recordingLogger();
  const server = await makeTestApp(t, { logger });
  const origin = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `${origin}/v1/`;
  /** Requests for parcels (one by one, `@<sha>`, or in a batch, `?parcels=`) so far. */
  const parcelRequests = (): number =>
    records.filter((r) => r.msg === 'incoming request' && /@|[?&]parcels=/.test((r.req as { url: string }).url)).length;

  const invoice = signedInvoice('example.com/app', '1.0.0', [{ name: 'small.txt', data: SMALL }, { name: 'large.bin', data: LARGE }]);
  const seed = new BindleClient({ baseUrl: url });
  t.teardown(() => seed.close());
  await seed.createInvoice(invoice);
  for (const [i, data] of [SMALL, LARGE].entries()) {
    const label = invoice.parcel?.[i]?.label;
    if (label !== undefined) await seed.createParcel(ID, label, data);
  }
  const keyring = join(dir, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creatorKey()), publicKeyEntry(server.hostKey)] }));
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', url, '-r', keyring, '-d', join(dir, 'cache'), '--retries', '0'];
  const parcels = join(dir, 'cache', canonicalId({ name: 'example.com/app', version: '1.0.0' }), 'parcels');
  const first = await bindle([...global, 'get', ID]);
  t.equal(first.code, 0, { stderr: first.stderr });
  t.match(first.stdout, '2 parcel(s) downloaded, 0 already cached');
  return {
    dir, server, bindle, global, parcels, parcelRequests,
    smallPath: join(parcels, `${sha256(SMALL)}.dat`),
    largePath: join(parcels, `${sha256(LARGE)}.dat`),
  };
}

t.test('get re-hashes cached parcels: an intact one is reused, a corrupt one of the same size is fetched again', async (t) => {
  const { dir, bindle, global, parcels, parcelRequests, smallPath, largePath } = await setup(t);
  let before = parcelRequests();
  const intact = await bindle([...global, 'get', ID]);
  t.equal(intact.code, 0, { stderr: intact.stderr });
  t.match(intact.stdout, '0 parcel(s) downloaded, 2 already cached');
  t.equal(intact.stderr, '', 'no warning');
  t.equal(parcelRequests() - before, 0, 'an intact cache costs no parcel request');

  writeFileSync(smallPath, corrupted(SMALL));
  writeFileSync(largePath, corrupted(LARGE));
  before = parcelRequests();
  const repaired = await bindle([...global, 'get', ID]);
  t.equal(repaired.code, 0, { stderr: repaired.stderr });
  t.match(repaired.stdout, '2 parcel(s) downloaded, 0 already cached');
  t.ok(parcelRequests() - before > 0, 'the corrupt parcels were requested again');
  for (const [data, name] of [[SMALL, 'small.txt'], [LARGE, 'large.bin']] as const) {
    t.match(
      repaired.stderr,
      `bindle: warning: a corrupt cached parcel was removed and fetched again: parcel ${sha256(data)} (${name}) in the cache ${join(parcels, `${sha256(data)}.dat`)}: the data has sha256 ${sha256(corrupted(data))}, but its label says ${sha256(data)}\n`,
      `the warning names ${name}`,
    );
  }
  t.same(readFileSync(smallPath), SMALL, 'the small parcel is repaired');
  t.same(readFileSync(largePath), LARGE, 'the large parcel is repaired');
  before = parcelRequests();
  const extracted = await bindle([...global, 'get', ID, '-x', join(dir, 'out')]);
  t.equal(extracted.code, 0, { stderr: extracted.stderr });
  t.equal(parcelRequests() - before, 0, 'the repaired cache is reused');
  t.same(readFileSync(join(dir, 'out', 'large.bin')), LARGE);
});

t.test('get-parcel removes a corrupt cached copy; with the server down, a cache holding one is not used', async (t) => {
  const { dir, server, bindle, global, smallPath, largePath } = await setup(t);
  writeFileSync(smallPath, corrupted(SMALL));
  const out = join(dir, 'small.txt');
  const refused = await bindle([...global, 'get-parcel', ID, sha256(SMALL), '-o', out]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, `the corrupt copy ${smallPath} was removed from the cache: run 'bindle get ${ID}' to download it again`);
  t.notOk(existsSync(smallPath), 'the corrupt copy is gone');
  t.notOk(existsSync(out), 'nothing was written');
  const fetched = await bindle([...global, 'get-parcel', ID, sha256(SMALL), '-o', out]);
  t.equal(fetched.code, 0, { stderr: fetched.stderr });
  t.same(readFileSync(out), SMALL);

  // With the server down, a cache holding a corrupt parcel (of the right size) is not used.
  t.equal((await bindle([...global, 'get', ID])).code, 0, 'the cache is complete again');
  writeFileSync(largePath, corrupted(LARGE));
  await server.app.close();
  const offline = await bindle([...global, 'get', ID]);
  t.equal(offline.code, 1, 'refused rather than served corrupt', { stdout: offline.stdout });
  t.notMatch(offline.stdout, /already in the cache/);
});

t.test('with the server down, get removes a corrupt cached parcel and says so; the next get downloads it again', async (t) => {
  const { dir, bindle, global, parcelRequests, smallPath, largePath } = await setup(t);
  writeFileSync(largePath, corrupted(LARGE));
  // Nothing listens on port 1: the server is unreachable, the cache is all there is.
  const down = global.map((arg, i) => (global[i - 1] === '-s' ? 'http://127.0.0.1:1/v1/' : arg));
  for (const extra of [[], ['-x', join(dir, 'out')], ['-e', join(dir, 'export')]]) {
    writeFileSync(largePath, corrupted(LARGE));
    const offline = await bindle([...down, 'get', ID, ...extra]);
    t.equal(offline.code, 1, `get ${extra.join(' ')}: refused rather than served corrupt`, { stdout: offline.stdout });
    t.match(
      offline.stderr,
      `bindle: warning: a corrupt cached parcel was removed: parcel ${sha256(LARGE)} (large.bin) in the cache ${largePath}: the data has sha256 ${sha256(corrupted(LARGE))}, but its label says ${sha256(LARGE)}; ` +
        `run 'bindle get ${ID}' with the server reachable to download it again`,
    );
    t.notOk(existsSync(largePath), 'the corrupt copy is gone');
    t.ok(existsSync(smallPath), 'the intact one is kept');
  }
  const before = parcelRequests();
  const online = await bindle([...global, 'get', ID]);
  t.equal(online.code, 0, { stderr: online.stderr });
  t.match(online.stdout, '1 parcel(s) downloaded, 1 already cached');
  t.equal(online.stderr, '', 'nothing corrupt was left to repair');
  t.ok(parcelRequests() - before > 0);
  t.same(readFileSync(largePath), LARGE);
});

t.test('a directory where a cached parcel belongs is removed like a corrupt copy, online and offline; an incomplete cache says what it lacks', async (t) => {
  const { dir, bindle, global, smallPath } = await setup(t);
  const plant = (): void => {
    rmSync(smallPath, { force: true, recursive: true });
    mkdirSync(smallPath);
    writeFileSync(join(smallPath, 'x'), 'planted');
  };
  plant();
  const online = await bindle([...global, 'get', ID]);
  t.equal(online.code, 0, { stderr: online.stderr });
  t.match(online.stderr, `a corrupt cached parcel was removed and fetched again: parcel ${sha256(SMALL)} (small.txt)`);
  t.same(readFileSync(smallPath), SMALL, 'the parcel is back in its place');

  plant();
  const down = global.map((arg, i) => (global[i - 1] === '-s' ? 'http://127.0.0.1:1/v1/' : arg));
  const offline = await bindle([...down, 'get', ID]);
  t.equal(offline.code, 1);
  t.match(offline.stderr, `a corrupt cached parcel was removed: parcel ${sha256(SMALL)} (small.txt)`);
  t.notOk(existsSync(smallPath), 'the directory is gone');
  const again = await bindle([...down, 'get', ID, '-x', join(dir, 'out')]);
  t.equal(again.code, 1);
  t.match(again.stderr, `the cached copy of ${ID} cannot be used: it lacks 1 parcel(s): ${sha256(SMALL)} (small.txt)`);
  t.notMatch(again.stderr, /EISDIR/);
});
