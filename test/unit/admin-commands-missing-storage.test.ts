/**
 * The admin commands that work on existing data (server/bin/admin-commands.ts: reindex, export,
 * gc, fsck) refuse a data directory that does not exist, saying so, and create nothing there: no
 * directory, index or host key. `keys create-host --out` refuses a directory. Run in-process.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runExport, runFsck, runGc, runKeys, runReindex, type CommandIo } from '../../server/bin/admin-commands.js';

function io(cwd: string, env: NodeJS.ProcessEnv = {}): { io: CommandIo; text: () => string } {
  let out = '';
  return { io: { env, cwd, out: (text) => (out += text) }, text: () => out };
}

t.test('reindex refuses a missing data directory, naming where it was given, and creates nothing', async (t) => {
  const cwd = t.testdir({ 'a-file': 'x' });
  const missing = join(cwd, 'missing');
  const run = io(cwd);
  await t.rejects(runReindex(['--directory', missing], run.io), {
    code: 'invalid_config',
    message: /^--directory: data directory \S*missing does not exist; reindex imports the invoice files of an existing one$/,
  });
  t.notOk(existsSync(missing), 'no directory, index or host key was created');
  t.equal(run.text(), '', 'no report');
  await t.rejects(runReindex([], io(cwd, { BINDLE_DIRECTORY: 'missing' }).io), { message: /^environment variable BINDLE_DIRECTORY: / });
  t.notOk(existsSync(missing));
  await t.rejects(runReindex(['-d', 'a-file'], run.io), { message: /a-file is not a directory/ });
});

t.test('reindex of an existing directory without an index creates the index (a reference layout has none)', async (t) => {
  const cwd = t.testdir({ data: { invoices: {} } });
  const run = io(cwd);
  t.equal(await runReindex(['--directory', 'data'], run.io), 0);
  t.match(run.text(), /^reindexed \S*data: 0 added/);
  t.ok(existsSync(join(cwd, 'data', 'index.sqlite')), 'the index');
  t.notOk(existsSync(join(cwd, 'data', 'signing-keys.toml')), 'no host key: the server creates it when it first serves');
});

t.test('export, gc and fsck refuse a missing data directory and create nothing', async (t) => {
  const cwd = t.testdir();
  const missing = join(cwd, 'missing');
  for (const [name, run] of [
    ['export', (o: CommandIo) => runExport(['--reference-layout', join(cwd, 'out'), '--directory', missing], o)],
    ['gc', (o: CommandIo) => runGc(['--directory', missing], o)],
    ['fsck', (o: CommandIo) => runFsck(['--directory', missing], o)],
  ] as const) {
    await t.rejects(run(io(cwd).io), { code: 'invalid_config', message: /^index sqlite:\S*missing\/index\.sqlite does not exist$/ }, name);
    t.notOk(existsSync(missing), `${name} created no data directory`);
  }
  t.notOk(existsSync(join(cwd, 'out')), 'export wrote nothing');
});

t.test('keys create-host --out a directory says it is a directory, with or without --rotate', async (t) => {
  const cwd = t.testdir();
  mkdirSync(join(cwd, 'keys'));
  for (const rotate of [[], ['--rotate']]) {
    await t.rejects(runKeys(['create-host', '--out', 'keys', ...rotate], io(cwd).io), {
      code: 'invalid_config',
      message: /^--out \S*keys is a directory; name the key file to write, e\.g\. \S*keys\/host-keys\.toml$/,
    }, rotate.join(' ') || 'without --rotate');
  }
});
