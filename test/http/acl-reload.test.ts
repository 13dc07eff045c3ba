/**
 * The running server re-reads its ACL file on SIGHUP and when the file changes (issue 11 item
 * 12), keeping the last good version when the new one is invalid. In-process, through openServer.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { tokenDigest } from '../../server/auth/index.js';
import { loadServerConfig } from '../../server/config/server-config.js';
import { openServer, type RunningServer } from '../../server/server-runtime.js';
import { signedInvoice } from '../helpers/bindles.js';
import { vec } from '../helpers/paths.js';

const grant = (who: string): string => `[[grant]]\nto = ["${who}"]\nallow = ["push"]\non = ["example.com/"]\n`;

async function push(server: RunningServer, name: string): Promise<number> {
  const res = await server.app.inject({
    method: 'POST', url: '/v1/_i',
    headers: { authorization: 'Bearer ci-token', 'content-type': 'application/toml' },
    payload: renderInvoice(signedInvoice(name, '1.0.0', [])),
  });
  return res.statusCode;
}

/**
 * Polls until `push` answers `status` (the file watcher polls every second); bounded. `rewrite`,
 * when given, writes the file again every 2 s: the watcher compares each poll with its first
 * stat, which it takes on the thread pool after it starts, and on a loaded machine that stat can
 * come after the test's first write, which then never looks like a change.
 */
async function until(server: RunningServer, name: string, status: number, rewrite?: () => void): Promise<number> {
  let last = 0;
  for (let i = 0; i < 120; i++) {
    last = await push(server, `${name}${i}`);
    if (last === status) return last;
    if (rewrite !== undefined && i % 8 === 7) rewrite();
    await sleep(250);
  }
  return last;
}

t.test('SIGHUP and a changed file reload the ACL', async (t) => {
  const dir = t.testdir({ data: {}, 'acl.toml': grant('someone-else'), tokens: `ci:${tokenDigest('ci-token')}\n` });
  const aclPath = join(dir, 'acl.toml');
  const config = await loadServerConfig(
    ['-i', '127.0.0.1:0', '-d', join(dir, 'data'), '--token-file', join(dir, 'tokens'), '--acl-file', aclPath,
      '--keyring', vec('scaffolds', 'keys', 'keyring.toml'), '--log-level', 'silent'],
    {}, dir,
  );
  const server = await openServer(config, { hostLabel: 'Test Host <host@bindle.test>' });
  t.teardown(() => server.close());
  await server.listen();
  t.equal(await push(server, 'example.com/a'), 403, 'no grant yet');

  const grantCi = (): void => writeFileSync(aclPath, grant('ci'));
  grantCi();
  t.equal(await until(server, 'example.com/changed', 201, grantCi), 201, 'the changed file applies');

  writeFileSync(aclPath, 'garbage = [');
  process.emit('SIGHUP');
  await sleep(1500);
  t.equal(await push(server, 'example.com/still'), 201, 'an invalid file keeps the last good version');

  writeFileSync(aclPath, grant('someone-else'));
  process.emit('SIGHUP');
  t.equal(await until(server, 'example.com/revoked', 403), 403, 'the grant is revoked');
});
