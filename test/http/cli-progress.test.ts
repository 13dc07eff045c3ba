/**
 * The CLI's progress output end to end (issue 10): on a terminal, `push` and `get` draw one
 * overall bar across all their parcels (small ones too) and clear it, leaving only the one line
 * per parcel, and long local steps (hashing before a push, compressing an export) show bars too; on a stream that is not a terminal, with `--no-progress`, or with JSON output,
 * stdout carries no control characters (and JSON output nothing but the JSON). Run in-process
 * against a real Bindle server, stdout being an in-memory terminal of 80 columns.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { publicKeyEntry } from '../../core/signing/keys.js';
import { writeStandalone } from '../../client/standalone/standalone-bindle.js';
import { sha256, signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { hasControlCharacters, inProcessCli, liveLines, terminalScreen as screen } from '../helpers/cli-in-process.js';
import { listenWithNewCreator } from '../helpers/test-app.js';


t.test('push and get: an overall bar on a terminal, clean output elsewhere', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Progress Test <progress@example.com>');
  const keyring = join(dir, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator), publicKeyEntry(server.hostKey)] }));
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', server.url, '-r', keyring, '-d', join(dir, 'cache'), '--retries', '0'];
  const standalone = async (name: string): Promise<string> => {
    const parcels: TestParcel[] = [
      { name: 'big.bin', data: Buffer.alloc(2 << 20, name) },
      { name: 'a.txt', data: Buffer.from(`a of ${name}\n`) },
      { name: 'b.txt', data: Buffer.from(`b of ${name}\n`) },
    ];
    const invoice = signedInvoice(name, '1.0.0', parcels, { key: creator });
    return writeStandalone(join(dir, name.replace('/', '_')), invoice, new Map(parcels.map((p) => [sha256(p.data), p.data])));
  };

  const tty = await bindle([...global, 'push', await standalone('example.com/tty')], { ttyColumns: 80 });
  t.equal(tty.code, 0, tty.stderr);
  t.ok(liveLines(tty.stdout).some((l) => /^\[[#-]{24}\] [\d.]+ (B|KiB|MiB) \/ 2\.0 MiB {2}.*\d\/3 parcels$/.test(l)), 'an overall bar across the three parcels');
  t.ok(liveLines(tty.stdout).some((l) => /^Checking parcels \[[#-]{24}\] [\d.]+ (B|KiB|MiB) \/ 2\.0 MiB$/.test(l)), 'hashing the parcels before the push shows a bar');
  const lines = screen(tty.stdout).split('\n');
  t.equal(lines.filter((l) => l.startsWith('Uploaded parcel ')).length, 3, 'one line per parcel');
  t.notOk(hasControlCharacters(screen(tty.stdout)), 'the bar is cleared: nothing of it stays on the screen');

  const plain = await bindle([...global, 'push', await standalone('example.com/plain')]);
  t.equal(plain.code, 0, plain.stderr);
  t.notOk(hasControlCharacters(plain.stdout), 'not a terminal: no control characters');
  t.equal(plain.stdout.split('\n').filter((l) => l.startsWith('Uploaded parcel ')).length, 3);

  const json = await bindle([...global, 'push', await standalone('example.com/json'), '--output', 'json'], { ttyColumns: 80 });
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(json.stdout), { id: 'example.com/json/1.0.0', created: true }, 'JSON output is only the JSON, even on a terminal');

  const got = await bindle([...global, 'get', 'example.com/tty/1.0.0'], { ttyColumns: 80 });
  t.equal(got.code, 0, got.stderr);
  t.ok(liveLines(got.stdout).some((l) => /^\[[#-]{24}\] .*\/ 2\.0 MiB .*\d\/3 parcels$/.test(l)), 'get draws the overall bar too');
  t.equal(screen(got.stdout).split('\n').filter((l) => l.startsWith('Fetched parcel ')).length, 3);
  const exported = await bindle([...global, 'get', 'example.com/tty/1.0.0', '--export', join(dir, 'exports')], { ttyColumns: 80 });
  t.equal(exported.code, 0, exported.stderr);
  t.ok(liveLines(exported.stdout).some((l) => /^Compressing \[[#-]{24}\] [\d.]+ (B|KiB|MiB) \/ 2\.0 MiB$/.test(l)), 'compressing the export shows a bar');
  t.match(screen(exported.stdout), /Exported example\.com\/tty\/1\.0\.0 to .*\.tar\.gz\n$/);
  t.notOk(hasControlCharacters(screen(exported.stdout)), 'and clears it');

  const quiet = await bindle([...global, '--no-progress', 'get', 'example.com/plain/1.0.0'], { ttyColumns: 80 });
  t.equal(quiet.code, 0, quiet.stderr);
  t.notOk(hasControlCharacters(quiet.stdout), '--no-progress on a terminal: no control characters');
  const piped = await bindle([...global, 'get', 'example.com/json/1.0.0']);
  t.equal(piped.code, 0, piped.stderr);
  t.notOk(hasControlCharacters(piped.stdout), 'get to a pipe: no control characters');
});
