/**
 * `bindle-kubelet` speaks like `bindle`: a usage error is one line pointing to its help, help
 * fits 80 columns, and a yanked bindle's error names the kubelet's own flag `--allow-yanked`
 * (not the HTTP API's `?yanked=true`). Run in-process against a real Bindle server.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKeyRing } from '../../core/codec/key-file-codec.js';
import { publicKeyEntry } from '../../core/signing/keys.js';
import { BindleClient } from '../../client/lib/bindle-client.js';
import { kubeletMain, type KubeletIo } from '../../client/kubelet/kubelet-cli.js';
import { signedInvoice } from '../helpers/bindles.js';
import { isolatedEnv } from '../helpers/cli-runner.js';
import { listenWithNewCreator } from '../helpers/test-app.js';

function kubeletIo(home: string): { io: KubeletIo; stderr: () => string } {
  let stderr = '';
  const io: KubeletIo = {
    env: isolatedEnv(home),
    cwd: home,
    stderr: (text) => {
      stderr += text;
    },
    fds: { stdin: 0, stdout: 1, stderr: 2 },
    onSignal: () => undefined,
  };
  return { io, stderr: () => stderr };
}

t.test('a usage error is one line that points to the help', async (t) => {
  const { io, stderr } = kubeletIo(t.testdir());
  t.equal(await kubeletMain(['--no-such-flag'], io), 2);
  t.equal(stderr(), "bindle-kubelet: unknown option '--no-such-flag' (see 'bindle-kubelet --help')\n");
});

t.test('a yanked bindle names --allow-yanked', async (t) => {
  const dir = t.testdir();
  const { server, creator } = await listenWithNewCreator(t, 'Kubelet Test <kubelet@example.com>');
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  const module = Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  const invoice = signedInvoice('example.com/gone', '1.0.0', [{ name: 'main.wasm', data: module, mediaType: 'application/wasm' }], { key: creator });
  await client.createInvoice(invoice);
  const label = invoice.parcel?.[0]?.label;
  if (label !== undefined) await client.createParcel('example.com/gone/1.0.0', label, module);
  await client.yankInvoice('example.com/gone/1.0.0');
  const keyring = join(dir, 'keyring.toml');
  writeFileSync(keyring, renderKeyRing({ version: '1.0', key: [publicKeyEntry(creator)] }));
  const { io, stderr } = kubeletIo(join(dir, 'home'));
  const code = await kubeletMain(['-s', server.url, '-r', keyring, '-d', join(dir, 'cache'), 'run', 'bindle:example.com/gone/1.0.0'], io);
  t.equal(code, 125, 'run fails before starting anything');
  t.match(stderr(), /yanked.*\(pass --allow-yanked to run it anyway\)/);
  t.notMatch(stderr(), /\?yanked=true/, "not the HTTP API's advice");
});
