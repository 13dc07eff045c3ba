/**
 * The CLI's in-process parts: default paths per platform, settings resolution (server URL,
 * strategy, Basic credentials, token files), the one-line error format, the search table, and
 * the transfer reporter (live bars only on a terminal, plain lines otherwise).
 */
import t from 'tap';
import { join } from 'node:path';
import type { QueryReply } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { CliFailure, EXIT_USAGE, attempt, formatFailure } from '../../client/cli/cli-error.js';
import type { CliIo, CliStream } from '../../client/cli/cli-io.js';
import { defaultPaths } from '../../client/cli/default-paths.js';
import { searchTable } from '../../client/cli/commands/read-commands.js';
import { guessMediaType } from '../../client/cli/media-types.js';
import { loadCredentials, resolveSettings, tokenFromFile, type GlobalOptionValues } from '../../client/cli/settings.js';
import { formatBytes } from '../../client/cli/transfer-progress.js';

class Capture implements CliStream {
  text = '';
  isTTY: boolean;
  columns = 100;
  constructor(isTTY: boolean) {
    this.isTTY = isTTY;
  }
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

function io(env: Record<string, string> = {}): CliIo {
  return { env, cwd: '/work/dir', stdout: new Capture(false), stderr: new Capture(false) };
}

const BASE: GlobalOptionValues = { server: 'http://localhost:8080/v1/', strategy: 'GreedyVerification', progress: true };

t.test('default paths follow the platform conventions', async (t) => {
  const linux = defaultPaths({ XDG_CACHE_HOME: '/x/cache', XDG_CONFIG_HOME: '/x/config', XDG_DATA_HOME: '/x/data' }, 'linux', '/home/u');
  t.same(linux, {
    bindleDir: '/x/cache/bindle',
    keyring: '/x/config/bindle/keyring.toml',
    tokenFile: '/x/config/bindle/.token',
    secretsFile: '/x/data/bindle/secret_keys.toml',
    legacySecretsFile: '/x/config/bindle/secret_keys.toml',
  });
  const fallback = defaultPaths({ XDG_CACHE_HOME: 'relative/ignored' }, 'linux', '/home/u');
  t.equal(fallback.bindleDir, '/home/u/.cache/bindle', 'a relative XDG path is ignored');
  t.equal(fallback.secretsFile, '/home/u/.local/share/bindle/secret_keys.toml');
  t.equal(defaultPaths({}, 'darwin', '/Users/u').bindleDir, '/Users/u/Library/Caches/bindle');
  t.equal(defaultPaths({}, 'darwin', '/Users/u').keyring, '/Users/u/Library/Application Support/bindle/keyring.toml');
  t.equal(defaultPaths({ LOCALAPPDATA: 'C:\\L', APPDATA: 'C:\\R' }, 'win32', 'C:\\u').bindleDir, join('C:\\L', 'bindle'));
});

t.test('settings: URL, paths, strategy and credentials', async (t) => {
  const s = resolveSettings({ ...BASE, server: 'https://bindle.example.com/v1', bindleDir: 'cache', keyring: '/abs/ring.toml' }, io());
  t.equal(s.serverUrl, 'https://bindle.example.com/v1/', 'a trailing slash is added');
  t.equal(s.bindleDir, '/work/dir/cache', 'relative paths resolve against the working directory');
  t.equal(s.keyringPath, '/abs/ring.toml');
  t.same(s.strategy, { kind: 'GreedyVerification' });
  t.equal(s.basicAuth, undefined);

  const usage = { name: 'CliFailure', exitCode: EXIT_USAGE };
  t.throws(() => resolveSettings({ ...BASE, server: 'localhost:8080' }, io()), usage, 'no scheme');
  t.throws(() => resolveSettings({ ...BASE, server: 'http://u:p@h/v1/' }, io()), usage, 'credentials in the URL');
  t.throws(() => resolveSettings({ ...BASE, strategy: 'Trust me' }, io()), usage, 'unknown strategy');
  t.throws(() => resolveSettings({ ...BASE, httpUser: 'admin' }, io()), usage, 'user without password');
  t.throws(() => resolveSettings({ ...BASE, httpPassword: 'secret' }, io()), usage, 'password without user');

  const basic = resolveSettings({ ...BASE, httpUser: 'admin', httpPassword: 'sw0rdf1sh', tokenFile: '/nowhere' }, io());
  t.same(await loadCredentials(basic), { kind: 'basic', user: 'admin', password: 'sw0rdf1sh' }, 'user is the user, password the password');

  const dir = t.testdir({ token: 'abc.def.ghi\n', login: 'id_token = "jwt-here"\nrefresh_token = "r"\n' });
  const bare = resolveSettings({ ...BASE, tokenFile: join(dir, 'token') }, io());
  t.same(await loadCredentials(bare), { kind: 'bearer', token: 'abc.def.ghi' });
  const login = resolveSettings({ ...BASE, tokenFile: join(dir, 'login') }, io());
  t.same(await loadCredentials(login), { kind: 'bearer', token: 'jwt-here' }, "the reference login file's id_token");
  const missing = resolveSettings({ ...BASE, tokenFile: join(dir, 'absent') }, io());
  await t.rejects(loadCredentials(missing), { code: 'invalid_config' }, 'a named token file must exist');
  const none = resolveSettings(BASE, io({ XDG_CONFIG_HOME: join(dir, 'no-config') }));
  t.equal(await loadCredentials(none), undefined, 'no default token file: anonymous');

  t.throws(() => tokenFromFile('f', '  \n'), { code: 'invalid_config' });
  t.throws(() => tokenFromFile('f', 'refresh_token = "only"\n'), { code: 'invalid_config' });
});

t.test('failures are one line: what failed, why, and an optional hint', async (t) => {
  const err = await attempt('could not get a/1.0.0', () => {
    throw new BindleError('not_found', 'fetching invoice a/1.0.0: no\nsuch invoice');
  }).catch((e: unknown) => e);
  t.type(err, CliFailure);
  t.equal(formatFailure(err), 'bindle: could not get a/1.0.0: fetching invoice a/1.0.0: no such invoice');
  const hinted = new CliFailure('could not push', new BindleError('unauthenticated', 'who are you'), { hint: 'set credentials' });
  t.equal(formatFailure(hinted), 'bindle: could not push: who are you (set credentials)');
  const fsErr = Object.assign(new Error('ENOENT: no such file or directory, open /x'), { code: 'ENOENT', path: '/x' });
  t.equal(formatFailure(new CliFailure('could not read /x', fsErr)), 'bindle: could not read /x: no such file or directory: /x');
});

t.test('search table', async (t) => {
  const reply: QueryReply = {
    query: 'x', strict: false, offset: 0, limit: 1, total: 2, more: true, yanked: false,
    invoices: [{ bindleVersion: '1.0.0', bindle: { name: 'a/b', version: '1.0.0' } }],
  };
  t.equal(
    searchTable(reply),
    'a/b/1.0.0:\t[no description available]\n=== Showing results 1 to 1 of 2 (limit: 1) - More results are available with --offset=1',
  );
  t.equal(searchTable({ ...reply, total: 0, more: false, invoices: [] }), 'No matching bindles were found');
});

t.test('media types and byte counts', async (t) => {
  t.equal(await guessMediaType('/a/app.WASM'), 'application/wasm');
  t.equal(await guessMediaType('README'), 'application/octet-stream');
  // From the media-type database, not a short hand-kept list.
  t.equal(await guessMediaType('photo.avif'), 'image/avif');
  t.equal(await guessMediaType('font.otf'), 'font/otf');
  t.equal(await guessMediaType('book.epub'), 'application/epub+zip');
  t.equal(await guessMediaType('config.toml'), 'application/toml');
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(57.2 * 1024 * 1024), '57.2 MiB');
});
