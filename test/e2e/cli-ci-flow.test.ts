/**
 * The CI publishing flow of docs/ci-publishing.md, end to end with real processes: create a
 * signing key, sign and push with credentials from the environment (both `sign-invoice` +
 * `push` and `push --sign`), verify the published bindle with a consumer keyring (`get`), then
 * re-push the identical release (a no-op, exit 0) and a different release under the same id
 * (a loud failure).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Invoice } from '../../schema/index.js';
import { parseKeyRing } from '../../core/codec/key-file-codec.js';
import { canonicalId } from '../../core/ids/bindle-id.js';
import { BindleClient } from '../../client/lib/index.js';
import { readStandalone, writeStandalone } from '../../client/standalone/standalone-bindle.js';
import { sha256 } from '../helpers/bindles.js';
import { cliRunner, exits, trustSetup } from '../helpers/cli-runner.js';
import { REPO_ROOT, vec } from '../helpers/paths.js';
import { CLI_BIN, startServerProcess } from '../helpers/server-process.js';

// Dozens of real CLI processes and several servers: allow more than the default per-file time
// on a slow, busy machine (this asserts nothing about speed).
t.setTimeout(300_000);

const NAME = 'example.com/ci-app';
const VERSION = '1.2.0';
const ID = `${NAME}/${VERSION}`;
const PUBLISHER = 'CI Publisher <ci@example.com>';

/** Writes the release as an unsigned standalone bindle under `outDir` (what a build produces). */
async function buildRelease(outDir: string, app: Buffer): Promise<string> {
  const config = Buffer.from('log_level = "info"\n');
  const invoice: Invoice = {
    bindleVersion: '1.0.0',
    bindle: { name: NAME, version: VERSION, description: 'the CI-published app', authors: ['CI <ci@example.com>'] },
    parcel: [
      { label: { sha256: sha256(app), mediaType: 'application/wasm', name: 'app.wasm', size: app.length } },
      { label: { sha256: sha256(config), mediaType: 'application/toml', name: 'config.toml', size: config.length } },
    ],
  };
  return writeStandalone(outDir, invoice, new Map([[sha256(app), app], [sha256(config), config]]));
}

t.test('create key, sign, push, verify with a keyring, re-push is a no-op, a different release fails', async (t) => {
  const dir = t.testdir();
  const trust = trustSetup(join(dir, 'trust'));
  const bindle = cliRunner(join(dir, 'home'));
  const secrets = join(dir, 'ci-secrets.toml');
  const publisherKeyring = join(dir, 'publisher-keyring.toml');

  // 1. A signing key for the pipeline (kept as a CI secret; here a file named by BINDLE_SECRET_FILE).
  const created = await bindle(['keys', 'create', PUBLISHER], { env: { BINDLE_SECRET_FILE: secrets, BINDLE_KEYRING: publisherKeyring } });
  exits(t, created, 0, 'created');
  const printed = await bindle(['keys', 'print'], { env: { BINDLE_SECRET_FILE: secrets } });
  exits(t, printed, 0, 'printed');
  const publisherKey = parseKeyRing(printed.stdout).key?.[0]?.key;
  if (publisherKey === undefined) throw new Error('keys print printed no key');

  // 2. The server trusts the publisher key and requires credentials for writes.
  const server = await startServerProcess(t, {
    args: ['--keyring', publisherKeyring, '--signing-keys', trust.signingKeysPath, '--htpasswd-file', vec('data', 'htpasswd')],
  });
  const ci = { BINDLE_URL: server.url, BINDLE_SECRET_FILE: secrets, SOURCE_DATE_EPOCH: '1700000000' };
  const creds = { BINDLE_HTTP_USER: 'admin', BINDLE_HTTP_PASSWORD: 'sw0rdf1sh' };
  const app = Buffer.alloc(256 * 1024, 7);

  // 3. Without credentials the push is refused, clearly.
  const firstBuild = await buildRelease(join(dir, 'build1'), app);
  const anonymous = await bindle(['push', '--sign', firstBuild], { env: ci });
  exits(t, anonymous, 1, 'anonymous');
  t.match(anonymous.stderr, /^bindle: could not push example\.com\/ci-app\/1\.2\.0 .*BINDLE_HTTP_USER.*\n$/, 'one line naming the credentials to set');

  // 4. The two-step flow: sign-invoice in place, then push.
  const sign = await bindle(['sign-invoice', join(firstBuild, 'invoice.toml'), '-o', join(firstBuild, 'invoice.toml')], { env: ci });
  exits(t, sign, 0, 'sign');
  const push = await bindle(['push', firstBuild], { env: { ...ci, ...creds } });
  exits(t, push, 0, 'push');
  t.match(push.stdout, /invoice created, 2 parcel\(s\) uploaded/);

  // 5. A consumer verifies with a keyring trusting the publisher (keys add) and the host (keys fetch).
  const consumerKeyring = join(dir, 'consumer-keyring.toml');
  const consumer = { BINDLE_URL: server.url, BINDLE_KEYRING: consumerKeyring };
  const add = await bindle(['keys', 'add', PUBLISHER, 'creator', publisherKey], { env: consumer });
  exits(t, add, 0, 'add');
  const fetchKeys = await bindle(['keys', 'fetch'], { env: consumer });
  exits(t, fetchKeys, 0, 'fetchKeys');
  const cache = join(dir, 'consumer-cache');
  const get = await bindle(['-d', cache, 'get', ID], { env: consumer });
  exits(t, get, 0, 'get');
  t.same(readFileSync(join(cache, canonicalId({ name: NAME, version: VERSION }), 'parcels', `${sha256(app)}.dat`)), app, 'the parcel arrived intact');

  // A keyring that does not trust the publisher refuses the bindle.
  const hostOnly = join(dir, 'host-only-keyring.toml');
  const fetchOnly = await bindle(['keys', 'fetch'], { env: { ...consumer, BINDLE_KEYRING: hostOnly } });
  exits(t, fetchOnly, 0, 'fetchOnly');
  const untrusted = await bindle(['-d', join(dir, 'other-cache'), 'get', ID], { env: { ...consumer, BINDLE_KEYRING: hostOnly } });
  exits(t, untrusted, 1, 'untrusted');
  t.match(untrusted.stderr, /^bindle: could not get example\.com\/ci-app\/1\.2\.0: .*not in the keyring.*bindle keys add.*\n$/);

  // 6. Re-running the pipeline on a fresh build of the same release is a no-op, both ways.
  const secondBuild = await buildRelease(join(dir, 'build2'), app);
  const rerun = await bindle(['push', '--sign', secondBuild], { env: { ...ci, ...creds, SOURCE_DATE_EPOCH: '1800000000' } });
  exits(t, rerun, 0, 'rerun');
  t.match(rerun.stdout, /nothing to do \(no-op\)/);
  const thirdBuild = await buildRelease(join(dir, 'build3'), app);
  const resign = await bindle(['sign-invoice', join(thirdBuild, 'invoice.toml'), '-o', join(thirdBuild, 'invoice.toml')], { env: ci });
  exits(t, resign, 0, 'resign');
  const repush = await bindle(['push', thirdBuild, '--output', 'json'], { env: { ...ci, ...creds } });
  exits(t, repush, 0, 'repush');
  t.same(JSON.parse(repush.stdout), { id: ID, created: false, uploaded: [], alreadyPresent: [sha256(app), sha256(Buffer.from('log_level = "info"\n'))], noop: true });

  // 7. A different release under the same id fails loudly and changes nothing.
  const changed = Buffer.alloc(256 * 1024, 8);
  const otherBuild = await buildRelease(join(dir, 'build4'), changed);
  const conflict = await bindle(['push', '--sign', otherBuild], { env: { ...ci, ...creds } });
  exits(t, conflict, 1, 'conflict');
  t.match(conflict.stderr, /^bindle: could not push example\.com\/ci-app\/1\.2\.0 .*a different release .* already exists.*\n$/);
  const client = new BindleClient({ baseUrl: server.url });
  t.teardown(() => client.close());
  t.notOk(await client.parcelExists(ID, sha256(changed)), 'the different release uploaded nothing');
});

interface WorkflowStep {
  name?: string;
  run?: string;
}

interface Workflow {
  jobs: { publish: { env: Record<string, string>; steps: WorkflowStep[] } };
}

const example = readFileSync(join(REPO_ROOT, 'examples', 'ci', 'publish.yml'), 'utf8');
const workflow = parseYaml(example) as Workflow;
const run = (name: string): string => workflow.jobs.publish.steps.find((s) => s.name === name)?.run ?? '';

t.test('docs/ci-publishing.md shows examples/ci/publish.yml', async (t) => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'ci-publishing.md'), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  t.equal(block, example, 'the documented workflow is the example file');
  t.match(run('Sign and push'), /^bindle push --sign /);
  t.match(run('Verify what the server now serves'), /^bindle -r \S+ -d \S+ get /);
});

const hasShellTools = spawnSync('bash', ['-c', 'command -v sha256sum'], { encoding: 'utf8' }).status === 0;

t.test('the example workflow\'s layout step makes a valid standalone bindle', { skip: hasShellTools ? false : 'needs bash and sha256sum' }, async (t) => {
  const dir = t.testdir();
  const shims = join(dir, 'shims');
  mkdirSync(shims);
  writeFileSync(join(shims, 'bindle'), `#!/bin/sh\nexec "${process.execPath}" "${CLI_BIN}" "$@"\n`);
  chmodSync(join(shims, 'bindle'), 0o755);
  mkdirSync(join(dir, 'build'));
  const app = Buffer.from('\0asm\x01\0\0\0');
  writeFileSync(join(dir, 'build', 'app.wasm'), app);
  writeFileSync(join(dir, 'build', 'config.toml'), 'log_level = "info"\n');
  const githubEnv = join(dir, 'github-env');
  writeFileSync(githubEnv, '');
  const result = spawnSync('bash', ['-e', '-c', run('Lay out the release as a standalone bindle')], {
    cwd: dir,
    encoding: 'utf8',
    env: {
      ...process.env,
      PATH: `${shims}:${process.env.PATH ?? ''}`,
      HOME: dir,
      GITHUB_REF_NAME: 'v1.4.0',
      GITHUB_ENV: githubEnv,
      BINDLE_NAME: workflow.jobs.publish.env.BINDLE_NAME ?? '',
    },
  });
  t.equal(result.status, 0, 'the layout step runs', { stdout: result.stdout, stderr: result.stderr });
  const exported = Object.fromEntries(
    readFileSync(githubEnv, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split('=', 2) as [string, string]),
  );
  t.equal(exported.BINDLE_ID, 'example.com/myapp/1.4.0');
  const bindle = await readStandalone(join(dir, exported.BINDLE_RELEASE_DIR ?? 'missing'));
  t.teardown(() => bindle.cleanup());
  t.equal(bindle.invoice.bindle.name, 'example.com/myapp');
  t.equal(bindle.invoice.bindle.version, '1.4.0');
  t.same(
    bindle.invoice.parcel?.map((p) => [p.label.name, p.label.mediaType, p.label.sha256]),
    [
      ['app.wasm', 'application/wasm', sha256(app)],
      ['config.toml', 'application/toml', sha256('log_level = "info"\n')],
    ],
  );
  t.equal(bindle.parcels.size, 2, 'both parcel files are in place (and match their labels)');
});
