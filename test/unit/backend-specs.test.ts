/**
 * `--index` / `--parcels` (and BINDLE_INDEX / BINDLE_PARCELS / config file keys): parsed once
 * into typed backend specs, with defaults inside the data directory, clear errors for bad
 * specs, and no password ever echoed. Opening a spec: sqlite/file open, postgres/s3 say
 * they are not in this build.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import {
  describeIndex,
  describeParcels,
  parseIndexSpec,
  parseParcelsSpec,
  redactUrl,
} from '../../server/config/backend-specs.js';
import { loadServerConfig, SERVER_OPTIONS } from '../../server/config/server-config.js';
import { isSharedIndex, openInvoiceIndex, openParcelStore } from '../../server/storage/backends.js';

const CWD = '/srv/bindle';

t.test('index specs', async (t) => {
  t.same(parseIndexSpec('sqlite:/var/lib/bindle/index.sqlite', 'x', CWD), { kind: 'sqlite', path: '/var/lib/bindle/index.sqlite' });
  t.same(parseIndexSpec('sqlite:data/i.sqlite', 'x', CWD), { kind: 'sqlite', path: resolve(CWD, 'data/i.sqlite') }, 'relative to cwd');
  t.same(parseIndexSpec(' postgres://u:p@db:5432/bindle ', 'x', CWD), { kind: 'postgres', url: 'postgres://u:p@db:5432/bindle' });
  t.same(parseIndexSpec('postgresql://db/bindle?sslmode=require', 'x', CWD), { kind: 'postgres', url: 'postgresql://db/bindle?sslmode=require' });
  t.same(parseIndexSpec('postgres:///bindle?host=/run/postgresql', 'x', CWD), { kind: 'postgres', url: 'postgres:///bindle?host=/run/postgresql' }, 'socket via host=');
  for (const [bad, why] of [
    ['sqlite:', /needs a file path/],
    ['mysql://db/x', /not an index; use sqlite:<path> or postgres:/],
    ['index.sqlite', /not an index/],
    ['postgres:///bindle', /names no host/],
    ['postgres://u:hunter2@[bad/x', /not a valid PostgreSQL URL/],
  ] as const) {
    t.throws(() => parseIndexSpec(bad, '--index', CWD), { code: 'invalid_config', message: why }, bad);
  }
  t.throws(() => parseIndexSpec('postgres://u:hunter2@[bad/x', '--index', CWD), { message: /^(?!.*hunter2)/ }, 'no password in errors');
});

t.test('parcel specs', async (t) => {
  t.same(parseParcelsSpec('file:/data', 'x', CWD, {}), { kind: 'file', directory: '/data' });
  t.same(parseParcelsSpec('file:data', 'x', CWD, {}), { kind: 'file', directory: resolve(CWD, 'data') });
  t.same(parseParcelsSpec('s3://bindle-parcels/prod/eu/?endpoint=http://127.0.0.1:7480&region=eu-west-1&forcePathStyle=true', 'x', CWD, {}), {
    kind: 's3', bucket: 'bindle-parcels', prefix: 'prod/eu', endpoint: 'http://127.0.0.1:7480', region: 'eu-west-1', forcePathStyle: true,
  });
  t.same(parseParcelsSpec('s3://bucket', 'x', CWD, {}), { kind: 's3', bucket: 'bucket', prefix: '', region: 'us-east-1', forcePathStyle: false }, 'defaults');
  t.same(parseParcelsSpec('s3://bucket', 'x', CWD, { AWS_REGION: 'ap-south-1' }), { kind: 's3', bucket: 'bucket', prefix: '', region: 'ap-south-1', forcePathStyle: false }, 'AWS_REGION');
  t.equal((parseParcelsSpec('s3://bucket?region=r1', 'x', CWD, { AWS_REGION: 'r2' }) as { region: string }).region, 'r1', 'region= wins over AWS_REGION');
  for (const [text, ms] of [['90s', 90_000], ['2m', 120_000], ['45000', 45_000], ['500ms', 500]] as const) {
    t.same(parseParcelsSpec(`s3://bucket?requestDeadline=${text}`, 'x', CWD, {}), {
      kind: 's3', bucket: 'bucket', prefix: '', region: 'us-east-1', forcePathStyle: false, requestDeadlineMs: ms,
    }, `requestDeadline=${text}`);
  }
  for (const [text, bytes] of [['256MiB', 256 << 20], ['0', 0], ['1GB', 1e9], ['1048576', 1 << 20]] as const) {
    t.same(parseParcelsSpec(`s3://bucket?partMemory=${text}`, 'x', CWD, {}), {
      kind: 's3', bucket: 'bucket', prefix: '', region: 'us-east-1', forcePathStyle: false, partMemoryBytes: bytes,
    }, `partMemory=${text}`);
  }
  for (const [bad, why] of [
    ['file:', /needs a directory/],
    ['/data', /not a parcel store/],
    ['s3://Bad_Bucket', /not an S3 bucket name/],
    ['s3://ab', /not an S3 bucket name/],
    ['s3://bucket:9000', /not an S3 bucket name/],
    ['s3://key:secret@bucket', /no credentials.*AWS_ACCESS_KEY_ID/],
    ['s3://bucket?endpoint=ftp://x', /must be an http or https URL/],
    ['s3://bucket?endpoint=', /"endpoint" is empty/],
    ['s3://bucket?forcePathStyle=yes', /forcePathStyle must be true or false/],
    ['s3://bucket?region=a&region=b', /given 2 times/],
    ['s3://bucket?pathStyle=true', /unknown s3:\/\/ parameter "pathStyle"/],
    ['s3://bucket?requestDeadline=soon', /requestDeadline "soon" is not a duration; use milliseconds/],
    ['s3://bucket?requestDeadline=1.5s', /requestDeadline "1.5s" is not a duration/],
    ['s3://bucket?requestDeadline=-1', /requestDeadline "-1" is not a duration/],
    ['s3://bucket?requestDeadline=0s', /requestDeadline must be longer than 0 ms/],
    ['s3://bucket?requestDeadline=999h', /requestDeadline must be .*at most 2147483647 ms, got 3596400000 ms/],
    ['s3://bucket?requestDeadline=', /"requestDeadline" is empty/],
    ['s3://bucket?requestDeadline=1s&requestDeadline=2s', /"requestDeadline" is given 2 times/],
    ['s3://bucket?partMemory=lots', /partMemory "lots" is not a size; use bytes or a number with a unit/],
    ['s3://bucket?partMemory=-1MiB', /partMemory "-1MiB" is not a size/],
    ['s3://bucket?partMemory=99999TiB', /partMemory "99999TiB" is larger than the maximum of 9007199254740991 bytes/],
    ['s3://bucket?partMemory=', /"partMemory" is empty/],
    ['s3://bucket/a//b', /empty, "." or ".." segments/],
    ['s3://bucket/a%zz', /not valid percent-encoding/],
  ] as const) {
    t.throws(() => parseParcelsSpec(bad, '--parcels', CWD, {}), { code: 'invalid_config', message: new RegExp(`^--parcels: .*${why.source}`) }, bad);
  }
});

t.test('descriptions never show a password', async (t) => {
  t.equal(redactUrl('postgres://bindle:s3cr%40t@db:5432/x'), 'postgres://bindle:***@db:5432/x');
  t.equal(describeIndex({ kind: 'postgres', url: 'postgres://bindle:pw@db/x' }), 'postgres://bindle:***@db/x');
  t.equal(describeIndex({ kind: 'sqlite', path: '/d/i.sqlite' }), 'sqlite:/d/i.sqlite');
  t.equal(describeParcels({ kind: 's3', bucket: 'b', prefix: 'p', region: 'r', forcePathStyle: true, endpoint: 'http://h' }), 's3://b/p (region r, endpoint http://h)');
  t.equal(describeParcels({ kind: 's3', bucket: 'b', prefix: '', region: 'r', forcePathStyle: false, requestDeadlineMs: 60_000 }), 's3://b (region r, request deadline 60000 ms)');
  t.equal(describeParcels({ kind: 's3', bucket: 'b', prefix: '', region: 'r', forcePathStyle: false, partMemoryBytes: 0 }), 's3://b (region r, part memory 0 bytes)');
});

t.test('config: defaults live in the data directory', async (t) => {
  const cwd = t.testdir();
  const config = await loadServerConfig(['-d', 'data'], {}, cwd);
  t.same(config.index, { kind: 'sqlite', path: join(cwd, 'data', 'index.sqlite') });
  t.same(config.parcels, { kind: 'file', directory: join(cwd, 'data') });
  t.ok(Object.isFrozen(config.index) && Object.isFrozen(config.parcels));
  t.equal(isSharedIndex(config.index), false, 'the embedded default is not shared');
});

t.test('config precedence: flag > environment > config file', async (t) => {
  const cwd = t.testdir({ 'server.toml': 'index = "sqlite:from-file.sqlite"\nparcels = "file:from-file"\n' });
  const env = { BINDLE_INDEX: 'postgres://env-db/bindle', BINDLE_PARCELS: 's3://env-bucket' };
  let config = await loadServerConfig(['--config-path', 'server.toml'], {}, cwd);
  t.same(config.index, { kind: 'sqlite', path: join(cwd, 'from-file.sqlite') }, 'file');
  t.same(config.parcels, { kind: 'file', directory: join(cwd, 'from-file') }, 'file');
  config = await loadServerConfig(['--config-path', 'server.toml'], env, cwd);
  t.same(config.index, { kind: 'postgres', url: 'postgres://env-db/bindle' }, 'environment over file');
  t.equal(config.parcels.kind, 's3', 'environment over file');
  t.equal(isSharedIndex(config.index), true);
  config = await loadServerConfig(['--config-path', 'server.toml', '--index', 'sqlite:flag.sqlite', '--parcels', 'file:flag'], env, cwd);
  t.same(config.index, { kind: 'sqlite', path: join(cwd, 'flag.sqlite') }, 'flag over environment');
  t.same(config.parcels, { kind: 'file', directory: join(cwd, 'flag') }, 'flag over environment');
});

t.test('config: a bad spec names where it came from', async (t) => {
  const cwd = t.testdir({ 'server.toml': 'parcels = "s3://x"\n' });
  await t.rejects(loadServerConfig(['--index', 'nope'], {}, cwd), { code: 'invalid_config', message: /^--index: "nope" is not an index/ });
  await t.rejects(loadServerConfig([], { BINDLE_INDEX: 'postgres://u:topsecret@/x' }, cwd), {
    code: 'invalid_config', message: /^environment variable BINDLE_INDEX: "postgres:\/\/u:\*\*\*@\/x" is not a valid PostgreSQL URL$/,
  });
  await t.rejects(loadServerConfig(['--config-path', 'server.toml'], {}, cwd), { message: /config file .*server\.toml key "parcels": .*bucket name/ });
  await t.rejects(loadServerConfig(['--index', ''], {}, cwd), { message: /--index: must not be empty/ });
});

t.test('the option list names every flag and variable --help shows', async (t) => {
  const flags = SERVER_OPTIONS.map((o) => o.flag);
  for (const f of ['--index', '--parcels', '--signing-keys', '--keyring', '--config-path', '--address']) t.ok(flags.includes(f as `--${string}`), f);
  const envs = SERVER_OPTIONS.map((o) => o.env);
  for (const e of ['BINDLE_INDEX', 'BINDLE_PARCELS', 'BINDLE_SIGNING_KEYS', 'BINDLE_CONFIG_PATH']) t.ok(envs.includes(e), e);
});

t.test('opening specs', async (t) => {
  const dir = t.testdir();
  const index = await openInvoiceIndex({ kind: 'sqlite', path: join(dir, 'sub', 'i.sqlite') });
  t.equal(await index.count(), 0, 'sqlite opens (and is created)');
  await index.close();
  const parcels = await openParcelStore({ kind: 'file', directory: join(dir, 'data') });
  t.ok(existsSync(join(dir, 'data', 'parcels')), 'file store opens (and is created)');
  await parcels.close();
  await t.rejects(openInvoiceIndex({ kind: 'sqlite', path: join(dir, 'absent.sqlite') }, { mustExist: true }), {
    code: 'invalid_config', message: /absent\.sqlite does not exist/,
  });
  t.notOk(existsSync(join(dir, 'absent.sqlite')), 'mustExist creates nothing');
  await t.rejects(openParcelStore({ kind: 'file', directory: join(dir, 'absent') }, { mustExist: true }), { code: 'invalid_config' });
  await t.rejects(openInvoiceIndex({ kind: 'postgres', url: 'postgres://u:pw@127.0.0.1:1/x' }), { code: 'unavailable' }, 'postgres is opened (and unreachable here)');
  // Credentials of its own, so the SDK never looks for instance credentials off this machine.
  const savedEnv = { ...process.env };
  t.teardown(() => {
    process.env = savedEnv;
  });
  process.env = { ...savedEnv, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true' };
  await t.rejects(
    openParcelStore({ kind: 's3', bucket: 'b', prefix: '', region: 'r', endpoint: 'http://127.0.0.1:1', forcePathStyle: true }),
    { code: 'unavailable' },
    's3 is opened (and unreachable here)',
  );
});
