/**
 * Choosing the entry module among the selected parcels, and parcel files on disk: checks
 * against labels, sanitised names (no traversal, no absolute paths), collisions, and the
 * read-only data directory a container gets.
 */
import t from 'tap';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Invoice, Label, Parcel } from '../../schema/index.js';
import { chooseEntry, isWasmParcel } from '../../client/kubelet/entrypoint.js';
import {
  layoutParcelFiles,
  makeWritable,
  populateDataDir,
  readVerifiedParcel,
  sanitiseParcelName,
  verifyParcelFile,
} from '../../client/kubelet/parcel-files.js';
import { sha256 } from '../helpers/bindles.js';

function label(name: string, data: string | Buffer, mediaType = 'text/plain', wasm?: Record<string, string>): Label {
  const bytes = Buffer.from(data);
  return { sha256: sha256(bytes), size: bytes.length, name, mediaType, ...(wasm !== undefined ? { feature: { wasm } } : {}) };
}

function parcel(name: string, mediaType = 'application/wasm', wasm?: Record<string, string>): Parcel {
  return { label: label(name, `bytes of ${name}`, mediaType, wasm) };
}

function invoiceOf(parcels: Parcel[]): Invoice {
  return { bindleVersion: '1.0.0', bindle: { name: 'example.com/app', version: '1.0.0' }, parcel: parcels };
}

t.test('the entry module', async (t) => {
  const app = parcel('app.wasm');
  const lib = parcel('lib.wasm', 'application/wasm', { library: 'true' });
  const data = parcel('data.txt', 'text/plain');
  t.equal(chooseEntry(invoiceOf([lib, app, data]), [lib, app, data]), app, 'the one wasm parcel that is not a library');
  t.ok(isWasmParcel(parcel('x.wasm', 'Application/WASM; charset=binary')), 'media type parameters and case are ignored');

  const marked = parcel('main.wasm', 'application/wasm', { type: 'entrypoint' });
  t.equal(chooseEntry(invoiceOf([app, marked]), [app, marked]), marked, 'wasm.type = "entrypoint" wins');
  const markedBool = parcel('start.wasm', 'application/wasm', { entrypoint: 't' });
  t.equal(chooseEntry(invoiceOf([app, markedBool]), [app, markedBool]), markedBool, 'wasm.entrypoint = "t" too');

  t.equal(chooseEntry(invoiceOf([app, marked]), [app, marked], 'app.wasm'), app, 'a name from the container wins over the mark');
  t.equal(chooseEntry(invoiceOf([app, marked]), [app, marked], app.label.sha256), app, 'a sha256 works as well');

  const other = parcel('other.wasm');
  t.throws(() => chooseEntry(invoiceOf([app, other]), [app, other]), {
    code: 'bad_request',
    message: /several possible entry modules \("app\.wasm", "other\.wasm"\): mark one with \[parcel\.label\.feature\.wasm\] type = "entrypoint"/,
  });
  const marked2 = parcel('main2.wasm', 'application/wasm', { type: 'entrypoint' });
  t.throws(() => chooseEntry(invoiceOf([marked, marked2]), [marked, marked2]), { message: /marks several entry modules/ });
  t.throws(() => chooseEntry(invoiceOf([data]), [data]), {
    code: 'bad_request',
    message: 'bindle example.com/app/1.0.0 has no application/wasm parcel among the selected parcels ("data.txt" (text/plain)): there is no module to run',
  });
  t.throws(() => chooseEntry(invoiceOf([lib]), [lib]), { message: /every selected wasm parcel \("lib\.wasm"\) is a library/ });
  t.throws(() => chooseEntry(invoiceOf([app, other]), [app], 'other.wasm'), { message: /"other\.wasm" is on the invoice but not among the selected parcels/ });
  t.throws(() => chooseEntry(invoiceOf([app]), [app], 'nope.wasm'), { message: /has no parcel named "nope\.wasm"/ });
  t.throws(() => chooseEntry(invoiceOf([app, data]), [app, data], 'data.txt'), { message: /has media type text\/plain, not application\/wasm/ });
});

t.test('sanitised names and layout', async (t) => {
  const cases: Array<[string, string]> = [
    ['config.toml', 'config.toml'],
    ['assets/css/site.css', 'assets/css/site.css'],
    ['/etc/passwd', 'etc/passwd'],
    ['../../../etc/shadow', 'etc/shadow'],
    ['a/./b/../c', 'a/b/c'],
    ['..\\..\\windows\\win.ini', 'windows/win.ini'],
    ['bad\u0000name\u001b.txt', 'bad_name_.txt'],
    ['..', ''],
    ['', ''],
  ];
  for (const [name, clean] of cases) t.equal(sanitiseParcelName(name), clean, JSON.stringify(name));

  const a = label('dup.txt', 'one');
  const b = label('dup.txt', 'two');
  const dirLike = label('dir', 'file named dir');
  const inDir = label('dir/inner.txt', 'inner');
  const nameless = label('../', 'nameless');
  const placed = layoutParcelFiles([a, b, dirLike, inDir, nameless]);
  t.same(placed.map((p) => p.relativePath), [
    'dup.txt',
    `${b.sha256.slice(0, 12)}-dup.txt`,
    'dir',
    `${inDir.sha256.slice(0, 12)}-inner.txt`,
    `parcel-${nameless.sha256.slice(0, 12)}`,
  ]);
});

t.test('checking files against labels', async (t) => {
  const dir = t.testdir({ good: 'hello', short: 'hell', wrong: 'HELLO' });
  const l = label('greeting', 'hello');
  await verifyParcelFile(join(dir, 'good'), l);
  t.same(await readVerifiedParcel(join(dir, 'good'), l), Buffer.from('hello'));
  const at = (file: string): string => `parcel ${l.sha256} (greeting) at ${join(dir, file)}`;
  await t.rejects(verifyParcelFile(join(dir, 'short'), l), { code: 'size_mismatch', message: `${at('short')}: got 4 bytes, but its label says 5 bytes` });
  await t.rejects(verifyParcelFile(join(dir, 'wrong'), l), {
    code: 'digest_mismatch',
    message: `${at('wrong')}: the data has sha256 ${sha256('HELLO')}, but its label says ${l.sha256}`,
  });
  await t.rejects(readVerifiedParcel(join(dir, 'wrong'), l), {
    code: 'digest_mismatch',
    message: `${at('wrong')}: the data has sha256 ${sha256('HELLO')}, but its label says ${l.sha256}`,
  });
  await t.rejects(readVerifiedParcel(join(dir, 'short'), l), { code: 'size_mismatch', message: `${at('short')}: got 4 bytes, but its label says 5 bytes` });
  await t.rejects(verifyParcelFile(join(dir, 'absent'), l), { code: 'not_found', message: `parcel ${l.sha256} (greeting) is not at ${join(dir, 'absent')}` });
});

t.test('a container data directory', async (t) => {
  const root = t.testdir({ cache: { one: 'first file', two: 'second file', bad: 'tampered!!' } });
  const one = label('../../escape.txt', 'first file');
  const two = label('nested/dir/two.txt', 'second file');
  const data = join(root, 'data');
  const placed = await populateDataDir(data, [
    { label: one, path: join(root, 'cache', 'one') },
    { label: two, path: join(root, 'cache', 'two') },
  ]);
  t.same(placed.map((p) => p.relativePath), ['escape.txt', 'nested/dir/two.txt']);
  t.equal(readFileSync(join(data, 'escape.txt'), 'utf8'), 'first file');
  t.equal(readFileSync(join(data, 'nested', 'dir', 'two.txt'), 'utf8'), 'second file');
  t.notOk(existsSync(join(root, 'escape.txt')), 'nothing lands outside the data directory');
  t.equal(statSync(join(data, 'escape.txt')).mode & 0o777, 0o444, 'files are read-only');
  t.equal(statSync(join(data, 'nested')).mode & 0o777, 0o555, 'directories are read-only');

  const again = await populateDataDir(data, [{ label: two, path: join(root, 'cache', 'two') }]);
  t.equal(again.length, 1);
  t.same(readdirSync(data), ['nested'], 'the directory is emptied before it is filled again');

  const tampered = label('x.txt', 'the real bytes');
  await t.rejects(populateDataDir(data, [{ label: tampered, path: join(root, 'cache', 'bad') }]), {
    code: 'size_mismatch',
    message: `parcel ${tampered.sha256} (x.txt) at ${join(root, 'cache', 'bad')}: got 10 bytes, but its label says 14 bytes`,
  });
  t.notOk(existsSync(join(data, 'x.txt')), 'a copy that does not match is removed');
  const sameSize = label('y.txt', 'tampered!?');
  await t.rejects(populateDataDir(data, [{ label: sameSize, path: join(root, 'cache', 'bad') }]), {
    code: 'digest_mismatch',
    message: `parcel ${sameSize.sha256} (y.txt) at ${join(root, 'cache', 'bad')}: the data has sha256 ${sha256('tampered!!')}, but its label says ${sameSize.sha256}`,
  });
  t.notOk(existsSync(join(data, 'y.txt')));
  await makeWritable(data);
  writeFileSync(join(data, 'writable-again'), 'ok');
});

t.test('a name segment longer than a file name may be is shortened, deterministically, to 255 bytes', async (t) => {
  const long = 'n'.repeat(300);
  const shortened = `${sha256(long).slice(0, 12)}-${'n'.repeat(242)}`;
  t.equal(sanitiseParcelName(long), shortened);
  t.equal(Buffer.byteLength(shortened), 255);
  const accents = 'é'.repeat(200);
  const cut = sanitiseParcelName(`docs/${accents}`);
  t.equal(cut, `docs/${sha256(accents).slice(0, 12)}-${'é'.repeat(121)}`, 'cut between characters');
  t.ok(Buffer.byteLength(cut.split('/')[1] ?? '') <= 255);
  t.equal(sanitiseParcelName(`${long}/a.txt`), `${shortened}/a.txt`, 'a long directory shortens alike in every path');
  t.equal(sanitiseParcelName('n'.repeat(255)), 'n'.repeat(255), '255 bytes fit as they are');

  const x = label('x'.repeat(250), 'one');
  const y = label('x'.repeat(250), 'two');
  const deep = label(Array.from({ length: 8 }, (_, i) => `${i}`.repeat(200)).join('/'), 'deep');
  const placed = layoutParcelFiles([x, y, deep]).map((p) => p.relativePath);
  t.same(placed, ['x'.repeat(250), `${y.sha256.slice(0, 12)}-${'x'.repeat(242)}`, `${deep.sha256.slice(0, 12)}-${'7'.repeat(200)}`], 'a clash, and a path over 1024 bytes, go to the top level within 255 bytes');

  const root = t.testdir({ cache: { one: 'first file', two: 'second file' } });
  const data = join(root, 'data');
  const one = label(`${long}/${long}.txt`, 'first file');
  const two = label(`${long}/other.txt`, 'second file');
  const files = await populateDataDir(data, [
    { label: one, path: join(root, 'cache', 'one') },
    { label: two, path: join(root, 'cache', 'two') },
  ]);
  t.same(files.map((f) => f.relativePath), [`${shortened}/${sha256(`${long}.txt`).slice(0, 12)}-${'n'.repeat(242)}`, `${shortened}/other.txt`]);
  t.equal(readFileSync(join(data, shortened, 'other.txt'), 'utf8'), 'second file', 'the data directory holds them');
});

t.test('names crafted to take every fallback still give each parcel a path of its own', async (t) => {
  const [a, b, c, d] = ['AAAA', 'BBBB', 'CCCC', 'DDDD'];
  const sb = sha256(b);
  // D is named B's sha256; C takes the `<sha12>-f` name B falls back to; A then B are both "f".
  const labels = [label(sb, d), label(`${sb.slice(0, 12)}-f`, c), label('f', a), label('f', b), label('f', b)];
  const paths = layoutParcelFiles(labels).map((p) => p.relativePath);
  t.same(paths, [sb, `${sb.slice(0, 12)}-f`, 'f', `${sb}-2`, `${sb}-3`], 'the sha256, then numbered');
  t.equal(new Set(paths).size, paths.length, 'no two parcels share a path');

  const root = t.testdir({ cache: { a, b, c, d } });
  const data = join(root, 'data');
  const files = [d, c, a, b].map((text, i) => ({ label: labels[i] ?? label('?', text), path: join(root, 'cache', ['d', 'c', 'a', 'b'][i] ?? '') }));
  await populateDataDir(data, files);
  t.same(readdirSync(data).sort(), [sb, `${sb.slice(0, 12)}-f`, 'f', `${sb}-2`].sort());
  t.equal(readFileSync(join(data, sb), 'utf8'), d, 'the parcel named like another\'s sha256 keeps its bytes');
  t.equal(readFileSync(join(data, `${sb}-2`), 'utf8'), b);
});
