/**
 * `bindle-server gc` and `bindle-server fsck` (server/bin/admin-commands.ts) run in-process on a
 * data directory a test app serves: exit 0 on a clean store, 1 with a corrupt parcel on disk,
 * text and JSON reports, --repair, --dry-run, and the gc grace period checked against the
 * staging age. On sqlite+file only: the commands find the storage by --directory.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { runFsck, runGc, type CommandIo } from '../../server/bin/admin-commands.js';
import { FileParcelStore } from '../../server/storage/file-parcel-store.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp } from '../helpers/test-app.js';
import { backendPair } from '../helpers/test-backends.js';

function capture(): { io: CommandIo; text: () => string; audits: object[] } {
  let out = '';
  const audits: object[] = [];
  return {
    io: { env: {}, cwd: process.cwd(), out: (text) => (out += text), audit: { info: (fields) => audits.push(fields) } },
    text: () => out,
    audits,
  };
}

if (backendPair() !== 'sqlite+file') {
  t.pass('the commands find the storage by --directory: checked on sqlite+file only');
} else {
  t.test('fsck and gc as commands', async (t) => {
    const dir = t.testdir();
    const ta = await makeTestApp(t, { dir });
    const data = Buffer.from('served parcel');
    const stray = Buffer.from('stray parcel');
    await ta.service.createInvoice(signedInvoice('example.com/app', '1.0.0', [{ name: 'p', data }]));
    t.equal((await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/app/1.0.0@${sha256(data)}`, payload: data })).statusCode, 200);
    const storage = ['--directory', dir];

    const clean = capture();
    t.equal(await runFsck(storage, clean.io), 0, 'clean store: exit 0');
    t.match(clean.text(), /checked 1 invoices, 1 parcels \(13 bytes\)[\s\S]*\nclean\n$/);

    const store = ta.parcels;
    if (!(store instanceof FileParcelStore)) throw new Error('sqlite+file serves from a FileParcelStore');
    await chmod(store.dataPath(sha256(data)), 0o644);
    await writeFile(store.dataPath(sha256(data)), 'rotten parcel');
    const found = capture();
    t.equal(await runFsck(storage, found.io), 1, 'a corrupt parcel: exit 1');
    t.match(found.text(), new RegExp(`corrupt ${sha256(data)}: the data hashes to ${sha256('rotten parcel')} \\(listed by example.com/app/1.0.0\\)`));
    const json = capture();
    t.equal(await runFsck([...storage, '--json'], json.io), 1);
    t.match(JSON.parse(json.text()), { problems: true, corrupt: [{ sha256: sha256(data) }], repaired: [] });
    const repair = capture();
    t.equal(await runFsck([...storage, '--repair'], repair.io), 1, 'after a repair the parcel is missing: still a problem');
    t.match(repair.text(), new RegExp(`repaired ${sha256(data)}`));
    t.equal(repair.audits.length, 1, 'the repair is audited');
    t.equal(await ta.parcels.has(sha256(data)), false);
    t.equal((await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/app/1.0.0@${sha256(data)}`, payload: data })).statusCode, 200);
    t.equal(await runFsck(storage, capture().io), 0, 'uploaded again: clean');

    await ta.parcels.put(sha256(stray), stray.length, Readable.from([stray]));
    const young = capture();
    t.equal(await runGc([...storage, '--json'], young.io), 0);
    t.match(JSON.parse(young.text()), { scanned: 2, young: 2, removed: 0 }, 'the default grace (1h) keeps new parcels');
    await sleep(20);
    const fast = ['--staging-max-age', '5ms', '--gc-grace', '10ms'];
    const dry = capture();
    t.equal(await runGc([...storage, ...fast, '--dry-run'], dry.io), 0);
    t.match(dry.text(), /^would remove 1 parcels \(12 bytes\); 2 scanned, 1 referenced/);
    t.equal(await ta.parcels.has(sha256(stray)), true, 'a dry run removes nothing');
    const gc = capture();
    t.equal(await runGc([...storage, ...fast], gc.io), 0);
    t.match(gc.text(), /^removed 1 parcels \(12 bytes\)/);
    t.match(gc.audits, [{ audit: true, action: 'gc-remove', parcel: sha256(stray) }]);
    t.equal(await ta.parcels.has(sha256(stray)), false);
    t.equal(await ta.parcels.has(sha256(data)), true);

    await t.rejects(runGc([...storage, '--gc-grace', '60s'], capture().io), {
      code: 'invalid_config',
      message: /^--gc-grace \(60000 ms\) is shorter than the default of --staging-max-age \(3600000 ms\)/,
    });
    const help = capture();
    t.equal(await runFsck(['--help'], help.io), 0);
    t.match(help.text(), /^Usage: bindle-server fsck/);
    await t.rejects(runFsck(['--directory', t.testdir()], capture().io), { code: 'invalid_config' }, 'a directory without data');
  });
}
