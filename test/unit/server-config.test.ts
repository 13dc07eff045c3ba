import { resolve } from 'node:path';
import t, { type Test } from 'tap';
import { defaultMaxConnections, openFileLimit } from '../../server/http/connection-limit.js';
import { parseByteSize } from '../../server/config/byte-sizes.js';
import {
  authMode,
  loadServerConfig,
  parseAddress,
  parseServerInvocation,
  serverHelp,
  type ServerConfig,
} from '../../server/config/server-config.js';

interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** TOML text of a config file, passed with --config-path. */
  file?: string;
}

/** Loads a config in a fresh temp directory (the cwd), with an optional config file. */
async function load(t: Test, argv: string[], opts: LoadOptions = {}): Promise<{ config: ServerConfig; cwd: string }> {
  const cwd = t.testdir(opts.file === undefined ? {} : { 'server.toml': opts.file });
  const fileArgs = opts.file === undefined ? [] : ['--config-path', 'server.toml'];
  const config = await loadServerConfig([...fileArgs, ...argv], opts.env ?? {}, cwd);
  return { config, cwd };
}

t.test('defaults', async (t) => {
  const { config, cwd } = await load(t, []);
  t.same(config.address, { host: '127.0.0.1', port: 8080 });
  t.equal(config.directory, resolve(cwd, 'bindle-data'));
  t.equal(config.keyringPath, resolve(cwd, 'bindle-data', 'keyring.toml'));
  t.equal(config.signingKeysPath, resolve(cwd, 'bindle-data', 'signing-keys.toml'));
  t.equal(config.strategy, 'GreedyVerification');
  t.equal(config.maxInvoiceBytes, 1024 * 1024);
  t.equal(config.maxParcelBytes, 8 * 1024 ** 3);
  t.equal(config.logLevel, 'info');
  t.equal(config.shutdownGraceMs, 10_000);
  t.equal(config.unauthenticated, true, 'loopback without auth serves unauthenticated');
  t.equal(config.implicitUnauthenticated, true);
  t.equal(authMode(config), 'none');
  t.equal(config.htpasswdFile, undefined);
  t.equal(config.tls, undefined);
  t.equal(config.oidc, undefined);
  t.equal(config.configPath, undefined);
});

t.test('the config is frozen, nested parts too', async (t) => {
  const { config } = await load(t, ['--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
  t.ok(Object.isFrozen(config));
  t.ok(Object.isFrozen(config.address));
  t.ok(config.tls !== undefined && Object.isFrozen(config.tls));
  t.throws(() => {
    (config as { logLevel: string }).logLevel = 'trace';
  }, TypeError);
});

t.test('precedence: flag > environment > config file > default', async (t) => {
  const file = [
    'address = "127.0.0.1:1001"',
    'directory = "from-file"',
    'maxInvoiceSize = "1KiB"',
    'logLevel = "warn"',
    'strategy = "CreativeIntegrity"',
    'shutdownGrace = 1000',
  ].join('\n');
  const env = {
    BINDLE_IP_ADDRESS_PORT: '127.0.0.1:2002',
    BINDLE_DIRECTORY: 'from-env',
    BINDLE_MAX_INVOICE_SIZE: '2KiB',
    BINDLE_LOG_LEVEL: 'error',
    BINDLE_VERIFICATION_STRATEGY: 'AuthoritativeIntegrity',
    BINDLE_SHUTDOWN_GRACE: '2000',
  };
  const flags = [
    '--address', '127.0.0.1:3003',
    '-d', 'from-flag',
    '--max-invoice-size', '3KiB',
    '--log-level', 'debug',
    '--strategy', 'ExhaustiveVerification',
    '--shutdown-grace', '3000',
  ];
  const pick = (c: ServerConfig, cwd: string): unknown[] => [
    c.address.port, c.directory.slice(cwd.length + 1), c.maxInvoiceBytes, c.logLevel, c.strategy, c.shutdownGraceMs,
  ];

  let r = await load(t, flags, { env, file });
  t.same(pick(r.config, r.cwd), [3003, 'from-flag', 3072, 'debug', 'ExhaustiveVerification', 3000], 'flags win');
  r = await load(t, [], { env, file });
  t.same(pick(r.config, r.cwd), [2002, 'from-env', 2048, 'error', 'AuthoritativeIntegrity', 2000], 'environment beats the file');
  r = await load(t, [], { file });
  t.same(pick(r.config, r.cwd), [1001, 'from-file', 1024, 'warn', 'CreativeIntegrity', 1000], 'the file beats defaults');
  t.equal(r.config.configPath, resolve(r.cwd, 'server.toml'));
  r = await load(t, []);
  t.same(pick(r.config, r.cwd), [8080, 'bindle-data', 1024 * 1024, 'info', 'GreedyVerification', 10_000], 'defaults');
});

t.test('the config file can be named by BINDLE_CONFIG_PATH; the flag wins over it', async (t) => {
  const cwd = t.testdir({ 'a.toml': 'address = "127.0.0.1:1111"', 'b.toml': 'address = "127.0.0.1:2222"' });
  let config = await loadServerConfig([], { BINDLE_CONFIG_PATH: 'a.toml' }, cwd);
  t.equal(config.address.port, 1111);
  config = await loadServerConfig(['--config-path', 'b.toml'], { BINDLE_CONFIG_PATH: 'a.toml' }, cwd);
  t.equal(config.address.port, 2222);
});

t.test('an empty environment variable counts as unset', async (t) => {
  const { config } = await load(t, [], { env: { BINDLE_IP_ADDRESS_PORT: '', BINDLE_LOG_LEVEL: '' }, file: 'logLevel = "warn"' });
  t.equal(config.address.port, 8080);
  t.equal(config.logLevel, 'warn');
});

t.test("the reference server's snake_case config keys are accepted", async (t) => {
  const file = [
    'address = "0.0.0.0:8080"',
    'bindle_directory = "data"',
    'keyring_file = "keys/keyring.toml"',
    'signing_file = "keys/signing.toml"',
    'verification_strategy = "MultipleAttestation[Creator, Approver]"',
    'cert_path = "tls/cert.pem"',
    'key_path = "tls/key.pem"',
    'htpasswd_file = "htpasswd"',
    'use_embedded_db = true',
  ].join('\n');
  const { config, cwd } = await load(t, [], { file });
  t.same(config.address, { host: '0.0.0.0', port: 8080 });
  t.equal(config.directory, resolve(cwd, 'data'));
  t.equal(config.keyringPath, resolve(cwd, 'keys/keyring.toml'));
  t.equal(config.signingKeysPath, resolve(cwd, 'keys/signing.toml'));
  t.equal(config.strategy, 'MultipleAttestation[Creator, Approver]');
  t.same(config.tls, { certPath: resolve(cwd, 'tls/cert.pem'), keyPath: resolve(cwd, 'tls/key.pem') });
  t.equal(config.htpasswdFile, resolve(cwd, 'htpasswd'));
  t.equal(config.unauthenticated, false);
  t.equal(authMode(config), 'configured');

  const oidcFile = [
    'address = "0.0.0.0:8080"',
    'oidc_client_id = "bindle"',
    'oidc_issuer_url = "https://issuer.example.com"',
    'oidc_device_url = "https://issuer.example.com/device"',
  ].join('\n');
  const r = await load(t, [], { file: oidcFile });
  t.same(r.config.oidc, { issuerUrl: 'https://issuer.example.com', clientId: 'bindle', deviceUrl: 'https://issuer.example.com/device' });
});

t.test('camelCase config keys', async (t) => {
  const file = [
    'keyringPath = "k.toml"',
    'signingKeys = "s.toml"',
    'tokenFile = "tokens"',
    'tlsCert = "c.pem"',
    'tlsKey = "k.pem"',
    'maxParcelSize = 4096',
    'oidcIssuerUrl = "https://id.example.com/"',
    'oidcClientId = "cli"',
    'oidcDeviceUrl = "https://id.example.com/device"',
    'oidcJwksFile = "jwks.json"',
  ].join('\n');
  const { config, cwd } = await load(t, [], { file });
  t.equal(config.keyringPath, resolve(cwd, 'k.toml'));
  t.equal(config.signingKeysPath, resolve(cwd, 's.toml'));
  t.equal(config.tokenFile, resolve(cwd, 'tokens'));
  t.equal(config.maxParcelBytes, 4096);
  t.same(config.oidc, {
    issuerUrl: 'https://id.example.com/', clientId: 'cli', deviceUrl: 'https://id.example.com/device', jwksFile: resolve(cwd, 'jwks.json'),
  });
});

t.test('relative paths resolve against the working directory; keyring and signing keys default into the directory', async (t) => {
  const { config, cwd } = await load(t, ['-d', 'store', '-r', '../ring.toml']);
  t.equal(config.directory, resolve(cwd, 'store'));
  t.equal(config.keyringPath, resolve(cwd, '../ring.toml'));
  t.equal(config.signingKeysPath, resolve(cwd, 'store', 'signing-keys.toml'));
  const abs = await load(t, ['--directory', '/srv/bindle']);
  t.equal(abs.config.directory, '/srv/bindle');
  t.equal(abs.config.keyringPath, '/srv/bindle/keyring.toml');
});

t.test('a keyring named by flag, environment or config file is marked as required; the default is not', async (t) => {
  t.equal((await load(t, [])).config.keyringSource, undefined, 'the default keyring may be missing (no keys)');
  t.equal((await load(t, ['-r', 'ring.toml'])).config.keyringSource, '--keyring');
  t.equal((await load(t, ['--keyring', 'ring.toml'])).config.keyringSource, '--keyring');
  t.equal((await load(t, [], { env: { BINDLE_KEYRING: 'ring.toml' } })).config.keyringSource, 'environment variable BINDLE_KEYRING');
  t.match((await load(t, [], { file: 'keyring = "ring.toml"' })).config.keyringSource, /server\.toml/);
});

t.test('sizes', async (t) => {
  const cases: [string, number][] = [
    ['1024', 1024], ['7b', 7], ['512KiB', 512 * 1024], ['10MB', 10_000_000], ['2 mib', 2 * 1024 ** 2],
    ['1.5GiB', 1.5 * 1024 ** 3], ['3kb', 3000], ['1TiB', 1024 ** 4],
  ];
  for (const [text, bytes] of cases) t.equal(parseByteSize(text), bytes, text);
  for (const bad of ['', 'abc', '10XB', '-1', '1e3', 'KiB', '1,5MiB']) t.equal(parseByteSize(bad), undefined, JSON.stringify(bad));

  const { config } = await load(t, ['--max-invoice-size', '512KiB'], { env: { BINDLE_MAX_PARCEL_SIZE: '10MB' } });
  t.equal(config.maxInvoiceBytes, 524_288);
  t.equal(config.maxParcelBytes, 10_000_000);
});

t.test('a size above the largest exact number of bytes is too large, not "not a size"', async (t) => {
  t.equal(parseByteSize('99999TiB'), 99999 * 1024 ** 4, 'parsed as what it says; the caller checks the range');
  t.equal((await load(t, ['--max-parcel-size', '8191TiB'])).config.maxParcelBytes, 8191 * 1024 ** 4, 'below the maximum');
  const tooLarge = /"99999TiB" is larger than the maximum of 9007199254740991 bytes$/;
  await t.rejects(load(t, ['--max-parcel-size', '99999TiB']), { code: 'invalid_config', message: tooLarge });
  await t.rejects(load(t, [], { env: { BINDLE_MAX_INVOICE_SIZE: '99999TiB' } }), { message: /^environment variable BINDLE_MAX_INVOICE_SIZE: .*larger than the maximum/ });
  await t.rejects(load(t, ['--max-parcel-size', `1${'0'.repeat(400)}`]), { message: /is larger than the maximum/ }, 'even past Infinity');
});

t.test('shutdown grace durations', async (t) => {
  for (const [text, ms] of [['5s', 5000], ['250ms', 250], ['1500', 1500], ['0', 0]] as const) {
    const { config } = await load(t, ['--shutdown-grace', text]);
    t.equal(config.shutdownGraceMs, ms, text);
  }
});

t.test('request timeouts: body idle and headers, from flag, env and file; 0 is refused', async (t) => {
  const defaults = (await load(t, [])).config;
  t.equal(defaults.bodyIdleTimeoutMs, 30_000);
  t.equal(defaults.headersTimeoutMs, 20_000);
  const fromFlags = (await load(t, ['--body-idle-timeout', '5s', '--headers-timeout', '750ms'])).config;
  t.same([fromFlags.bodyIdleTimeoutMs, fromFlags.headersTimeoutMs], [5000, 750]);
  const fromEnv = (await load(t, [], { env: { BINDLE_BODY_IDLE_TIMEOUT: '2s', BINDLE_HEADERS_TIMEOUT: '3000' } })).config;
  t.same([fromEnv.bodyIdleTimeoutMs, fromEnv.headersTimeoutMs], [2000, 3000]);
  const fromFile = (await load(t, [], { file: 'bodyIdleTimeout = "45s"\nheaders_timeout = 1000\n' })).config;
  t.same([fromFile.bodyIdleTimeoutMs, fromFile.headersTimeoutMs], [45_000, 1000]);
  await t.rejects(load(t, ['--body-idle-timeout', '0']), { code: 'invalid_config', message: /--body-idle-timeout.*longer than 0/ });
  await t.rejects(load(t, [], { env: { BINDLE_HEADERS_TIMEOUT: 'soon' } }), { code: 'invalid_config', message: /BINDLE_HEADERS_TIMEOUT/ });
});

t.test('max connections: flag over env over file, by default from the open-file limit; 0 is refused', async (t) => {
  t.equal((await load(t, [])).config.maxConnections, defaultMaxConnections(openFileLimit()));
  t.equal((await load(t, [], { file: 'max_connections = 300\n' })).config.maxConnections, 300);
  t.equal((await load(t, [], { file: 'maxConnections = 300\n', env: { BINDLE_MAX_CONNECTIONS: '200' } })).config.maxConnections, 200);
  t.equal((await load(t, ['--max-connections', '100'], { env: { BINDLE_MAX_CONNECTIONS: '200' } })).config.maxConnections, 100);
  await t.rejects(load(t, ['--max-connections', '0']), { code: 'invalid_config', message: /--max-connections/ });
  await t.rejects(load(t, [], { env: { BINDLE_MAX_CONNECTIONS: 'lots' } }), { code: 'invalid_config', message: /BINDLE_MAX_CONNECTIONS/ });
});

t.test('send timeout: from flag over env over file, default 60 s; 0 is refused', async (t) => {
  t.equal((await load(t, [])).config.sendTimeoutMs, 60_000);
  t.equal((await load(t, [], { file: 'send_timeout = "90s"\n' })).config.sendTimeoutMs, 90_000);
  t.equal((await load(t, [], { file: 'sendTimeout = "90s"\n', env: { BINDLE_SEND_TIMEOUT: '2m' } })).config.sendTimeoutMs, 120_000);
  t.equal((await load(t, ['--send-timeout', '1500ms'], { file: 'sendTimeout = "90s"\n', env: { BINDLE_SEND_TIMEOUT: '2m' } })).config.sendTimeoutMs, 1500);
  await t.rejects(load(t, ['--send-timeout', '0']), { code: 'invalid_config', message: /--send-timeout.*longer than 0/ });
  await t.rejects(load(t, [], { env: { BINDLE_SEND_TIMEOUT: 'later' } }), { code: 'invalid_config', message: /BINDLE_SEND_TIMEOUT/ });
});

t.test('staging max age: from flag, env and file, default 1 h; 0 is refused', async (t) => {
  t.equal((await load(t, [])).config.stagingMaxAgeMs, 3_600_000);
  t.equal((await load(t, ['--staging-max-age', '90s'])).config.stagingMaxAgeMs, 90_000);
  t.equal((await load(t, [], { env: { BINDLE_STAGING_MAX_AGE: '2s' } })).config.stagingMaxAgeMs, 2000);
  t.equal((await load(t, [], { file: 'staging_max_age = "5s"\n' })).config.stagingMaxAgeMs, 5000);
  await t.rejects(load(t, ['--staging-max-age', '0']), { code: 'invalid_config', message: /--staging-max-age/ });
  t.equal((await load(t, ['--staging-max-age', '1h'])).config.stagingMaxAgeMs, 3_600_000, 'the documented default is accepted as written');
  t.equal((await load(t, [], { env: { BINDLE_STAGING_MAX_AGE: '15m' } })).config.stagingMaxAgeMs, 900_000, 'minutes too');
});

t.test('failed-attempt limits: from flag, env and file, default 10 a minute; bad values are refused', async (t) => {
  t.same((await load(t, [])).config.authFailureLimit, { maxFailures: 10, windowMs: 60_000 });
  t.same((await load(t, ['--auth-max-failures', '3', '--auth-failure-window', '5s'])).config.authFailureLimit, { maxFailures: 3, windowMs: 5000 });
  const fromEnv = await load(t, [], { env: { BINDLE_AUTH_MAX_FAILURES: '25', BINDLE_AUTH_FAILURE_WINDOW: '120s' } });
  t.same(fromEnv.config.authFailureLimit, { maxFailures: 25, windowMs: 120_000 });
  const fromFile = await load(t, [], { file: 'authMaxFailures = 4\nauth_failure_window = "30s"\n' });
  t.same(fromFile.config.authFailureLimit, { maxFailures: 4, windowMs: 30_000 });
  const flagWins = await load(t, ['--auth-max-failures', '7'], { env: { BINDLE_AUTH_MAX_FAILURES: '8' }, file: 'authMaxFailures = 9\n' });
  t.equal(flagWins.config.authFailureLimit.maxFailures, 7, 'flag > env > file');
  t.ok(Object.isFrozen(flagWins.config.authFailureLimit));
  for (const bad of ['0', '-1', '2.5', 'ten', ' ']) {
    await t.rejects(load(t, [], { env: { BINDLE_AUTH_MAX_FAILURES: bad } }), {
      code: 'invalid_config',
      message: /environment variable BINDLE_AUTH_MAX_FAILURES: .* is not a whole number of at least 1/,
    }, `max failures ${JSON.stringify(bad)}`);
  }
  await t.rejects(load(t, ['--auth-failure-window', '0']), { code: 'invalid_config', message: /--auth-failure-window/ });
  await t.rejects(load(t, [], { file: 'authMaxFailures = true\n' }), { code: 'invalid_config', message: /key "authMaxFailures": expected a string or an integer/ });
});

t.test('trusted proxies: off by default; addresses and CIDR ranges from flag, env and file (an array); others refused', async (t) => {
  t.same((await load(t, [])).config.trustProxy, [], 'no proxy is trusted by default');
  t.same((await load(t, ['--trust-proxy', '10.0.0.1, 192.168.0.0/16,fd00::/8'])).config.trustProxy, ['10.0.0.1', '192.168.0.0/16', 'fd00::/8']);
  t.same((await load(t, [], { env: { BINDLE_TRUST_PROXY: '127.0.0.1' } })).config.trustProxy, ['127.0.0.1']);
  const fromFile = await load(t, [], { file: 'trust_proxy = ["10.1.2.3", "::1"]\n' });
  t.same(fromFile.config.trustProxy, ['10.1.2.3', '::1']);
  t.ok(Object.isFrozen(fromFile.config.trustProxy));
  t.same((await load(t, ['--trust-proxy', '10.0.0.2'], { file: 'trustProxy = ["10.0.0.3"]\n' })).config.trustProxy, ['10.0.0.2'], 'the flag wins');
  for (const bad of ['proxy.example.com', '10.0.0.0/33', '::/129', '10.0.0.1,', '10.0.0.0/8/8', 'true', '10.0.0.0/x']) {
    await t.rejects(load(t, ['--trust-proxy', bad]), { code: 'invalid_config', message: /^--trust-proxy: / }, bad);
  }
  await t.rejects(load(t, [], { file: 'trustProxy = "10.0.0.1"\n' }), { code: 'invalid_config', message: /key "trustProxy": expected an array of strings/ });
  await t.rejects(load(t, [], { file: 'trustProxy = [1]\n' }), { code: 'invalid_config', message: /expected an array of strings/ });
});

t.test('metrics address: none by default; from flag, env and file (flag first); invalid ones name their source', async (t) => {
  t.equal((await load(t, [])).config.metricsAddress, undefined, 'by default /metrics is on the main address');
  t.same((await load(t, ['--metrics-address', '127.0.0.1:9090'])).config.metricsAddress, { host: '127.0.0.1', port: 9090 });
  t.same((await load(t, [], { env: { BINDLE_METRICS_ADDRESS: '[::1]:9091' } })).config.metricsAddress, { host: '::1', port: 9091 });
  t.same((await load(t, [], { file: 'metrics_address = "0.0.0.0:9092"\n' })).config.metricsAddress, { host: '0.0.0.0', port: 9092 });
  const both = await load(t, ['--metrics-address', '127.0.0.1:9093'], { env: { BINDLE_METRICS_ADDRESS: '127.0.0.1:9094' }, file: 'metricsAddress = "127.0.0.1:9095"\n' });
  t.equal(both.config.metricsAddress?.port, 9093, 'the flag wins');
  await t.rejects(load(t, ['--metrics-address', '9090']), { code: 'invalid_config', message: /--metrics-address/ });
  await t.rejects(load(t, [], { env: { BINDLE_METRICS_ADDRESS: 'x:99999' } }), { code: 'invalid_config', message: /BINDLE_METRICS_ADDRESS/ });
});

t.test('a metrics address that takes the main address\'s port conflicts with it, from any source', async (t) => {
  const conflict = /conflicts with .*: the metrics listener needs an address of its own/;
  await t.rejects(load(t, ['--address', '127.0.0.1:9090', '--metrics-address', '127.0.0.1:9090']), {
    code: 'invalid_config',
    message: /^--metrics-address \(127\.0\.0\.1:9090\) conflicts with --address \(127\.0\.0\.1:9090\)/,
  });
  await t.rejects(load(t, [], { env: { BINDLE_IP_ADDRESS_PORT: '127.0.0.1:9090', BINDLE_METRICS_ADDRESS: '127.0.0.1:9090' } }), {
    message: /^environment variable BINDLE_METRICS_ADDRESS \(127\.0\.0\.1:9090\) conflicts with environment variable BINDLE_IP_ADDRESS_PORT/,
  });
  await t.rejects(load(t, [], { file: 'metricsAddress = "127.0.0.1:8080"\n' }), {
    message: /^config file .*server\.toml key "metricsAddress" \(127\.0\.0\.1:8080\) conflicts with the default of --address \(127\.0\.0\.1:8080\)/,
  }, 'the default address counts too');
  await t.rejects(load(t, ['-i', 'LOCALHOST:9090', '--metrics-address', 'localhost:9090']), { message: conflict }, 'host names compare without case');
  await t.rejects(load(t, ['-i', '0.0.0.0:9090', '--unauthenticated', '--metrics-address', '127.0.0.1:9090']), { message: conflict }, 'a wildcard covers its family');
  await t.rejects(load(t, ['-i', '[::1]:9090', '--metrics-address', '[::]:9090']), { message: conflict }, ':: covers every address');
  t.ok(await load(t, ['-i', '127.0.0.1:9090', '--metrics-address', '127.0.0.1:9091']), 'another port');
  t.ok(await load(t, ['-i', '127.0.0.1:9090', '--metrics-address', '127.0.0.2:9090']), 'another address, same port');
  t.ok(await load(t, ['-i', '[::1]:9090', '--metrics-address', '0.0.0.0:9090']), '0.0.0.0 does not cover IPv6');
  t.ok(await load(t, ['-i', '127.0.0.1:0', '--metrics-address', '127.0.0.1:0']), 'port 0 picks two free ports');
});

t.test('the sources start-up errors name: as validation errors name them, the data directory\'s for paths derived from it', async (t) => {
  t.same((await load(t, [])).config.sources, {
    address: 'the default of --address',
    directory: 'the default of --directory',
    index: 'the default of --directory',
    parcels: 'the default of --directory',
    signingKeys: 'the default of --directory',
  });
  const given = await load(t, ['--metrics-address', '127.0.0.1:9', '-c', 'c.pem', '--signing-keys', 's.toml'], {
    env: { BINDLE_DIRECTORY: 'd', BINDLE_TLS_KEY: 'k.pem' },
    file: 'address = "127.0.0.1:8"\nindex = "sqlite:i.sqlite"\n',
  });
  t.match(given.config.sources, {
    address: /server\.toml key "address"$/,
    metricsAddress: '--metrics-address',
    directory: 'environment variable BINDLE_DIRECTORY',
    index: /server\.toml key "index"$/,
    parcels: 'environment variable BINDLE_DIRECTORY',
    signingKeys: '--signing-keys',
    tlsCert: '--tls-cert',
    tlsKey: 'environment variable BINDLE_TLS_KEY',
  });
});

t.test('gc grace: from flag, env and file, default 1 h or the staging age if longer; never shorter than it', async (t) => {
  t.equal((await load(t, [])).config.gcGraceMs, 3_600_000);
  t.equal((await load(t, ['--staging-max-age', '7200s'])).config.gcGraceMs, 7_200_000, 'raised to a longer staging age');
  t.equal((await load(t, ['--staging-max-age', '1s', '--gc-grace', '90s'])).config.gcGraceMs, 90_000);
  t.equal((await load(t, ['--staging-max-age', '1s'], { env: { BINDLE_GC_GRACE: '2s' } })).config.gcGraceMs, 2000);
  t.equal((await load(t, ['--staging-max-age', '1s'], { file: 'gc_grace = "5s"\n' })).config.gcGraceMs, 5000);
  await t.rejects(load(t, ['--gc-grace', '60s']), {
    code: 'invalid_config',
    message: /^--gc-grace \(60000 ms\) is shorter than the default of --staging-max-age \(3600000 ms\): .*raise --gc-grace to at least 3600000 ms or lower --staging-max-age$/,
  });
  await t.rejects(load(t, [], { env: { BINDLE_STAGING_MAX_AGE: '2h' }, file: 'gc_grace = "1h"\n' }), {
    message: /^config file .*server\.toml key "gc_grace" \(3600000 ms\) is shorter than environment variable BINDLE_STAGING_MAX_AGE \(7200000 ms\)/,
  }, 'both sources named');
  await t.rejects(load(t, ['--gc-grace', '0']), { code: 'invalid_config', message: /--gc-grace/ });
});

t.test('address forms', async (t) => {
  t.same(parseAddress('127.0.0.1:8080', 'x'), { host: '127.0.0.1', port: 8080 });
  t.same(parseAddress('[::1]:8080', 'x'), { host: '::1', port: 8080 });
  t.same(parseAddress('0.0.0.0:0', 'x'), { host: '0.0.0.0', port: 0 });
  t.same(parseAddress('localhost:9000', 'x'), { host: 'localhost', port: 9000 });
  t.same(parseAddress('bindle.example.com:443', 'x'), { host: 'bindle.example.com', port: 443 });
  for (const bad of ['8080', '::1:8080', '[::1]8080', '[nothost]:1', ':8080', '256.1.1.1:80', 'a..b:80', '1.2.3.4:65536', '1.2.3.4:', '1.2.3.4:http']) {
    t.throws(() => parseAddress(bad, '--address'), { code: 'invalid_config', message: /--address/ }, bad);
  }
});

t.test('loopback without auth serves unauthenticated implicitly; elsewhere it is refused', async (t) => {
  for (const address of ['127.0.0.1:8080', '127.9.9.9:1', '[::1]:8080', 'localhost:8080', '[::ffff:127.0.0.1]:80']) {
    const { config } = await load(t, ['--address', address]);
    t.equal(config.implicitUnauthenticated, true, address);
    t.equal(config.unauthenticated, true, address);
  }
  for (const address of ['0.0.0.0:8080', '[::]:8080', '10.1.2.3:80', 'bindle.example.com:80']) {
    await t.rejects(load(t, ['--address', address]), { code: 'invalid_config', message: /--unauthenticated.*--htpasswd-file/ }, address);
  }
  await t.rejects(load(t, [], { env: { BINDLE_IP_ADDRESS_PORT: '0.0.0.0:80' } }), { message: /^no authentication is configured and environment variable BINDLE_IP_ADDRESS_PORT \(0\.0\.0\.0:80\)/ });
  await t.rejects(load(t, [], { file: 'address = "0.0.0.0:80"\n' }), { message: /^no authentication is configured and config file .*server\.toml key "address" \(0\.0\.0\.0:80\)/ });

  const explicit = await load(t, ['--address', '0.0.0.0:8080', '--unauthenticated']);
  t.equal(explicit.config.unauthenticated, true);
  t.equal(explicit.config.implicitUnauthenticated, false);
  const fromEnv = await load(t, ['-i', '0.0.0.0:8080'], { env: { BINDLE_UNAUTHENTICATED: 'true' } });
  t.equal(fromEnv.config.unauthenticated, true);

  for (const auth of [['--htpasswd-file', 'h'], ['--token-file', 't'], ['--oidc-issuer-url', 'https://i.test', '--oidc-client-id', 'c', '--oidc-device-url', 'https://i.test/d']]) {
    const { config } = await load(t, ['--address', '0.0.0.0:8080', ...auth]);
    t.equal(config.unauthenticated, false, auth.join(' '));
    t.equal(config.implicitUnauthenticated, false);
    t.equal(authMode(config), 'configured');
  }
});

t.test('every validation error names its source', async (t) => {
  const cases: { name: string; argv?: string[]; env?: NodeJS.ProcessEnv; file?: string; message: RegExp }[] = [
    { name: 'flag address', argv: ['--address', 'nope'], message: /^--address: "nope" has no port/ },
    { name: 'env address', env: { BINDLE_IP_ADDRESS_PORT: '1.2.3.4' }, message: /environment variable BINDLE_IP_ADDRESS_PORT/ },
    { name: 'file address', file: 'address = "::1:8080"', message: /server\.toml key "address".*brackets/ },
    { name: 'file address type', file: 'address = 8080', message: /key "address": expected a string, got number 8080/ },
    { name: 'port range', argv: ['-i', '127.0.0.1:70000'], message: /^--address: "70000" is not a port number/ },
    { name: 'flag size', argv: ['--max-invoice-size', '12bananas'], message: /^--max-invoice-size: "12bananas" is not a size/ },
    { name: 'env size zero', env: { BINDLE_MAX_PARCEL_SIZE: '0' }, message: /BINDLE_MAX_PARCEL_SIZE: a size limit must be at least 1 byte/ },
    { name: 'file size negative', file: 'max_parcel_size = -5', message: /key "max_parcel_size": a size limit/ },
    { name: 'flag log level', argv: ['--log-level', 'loud'], message: /^--log-level: "loud" is not a log level/ },
    { name: 'env log level', env: { BINDLE_LOG_LEVEL: 'verbose' }, message: /BINDLE_LOG_LEVEL/ },
    { name: 'flag strategy', argv: ['--strategy', 'Bogus'], message: /^--strategy: invalid verification strategy/ },
    { name: 'env strategy', env: { BINDLE_VERIFICATION_STRATEGY: 'Nope' }, message: /^environment variable BINDLE_VERIFICATION_STRATEGY: / },
    { name: 'file strategy', file: 'verification_strategy = "Wat"', message: /key "verification_strategy": invalid verification strategy/ },
    { name: 'flag duration', argv: ['--shutdown-grace', '5d'], message: /^--shutdown-grace: "5d" is not a duration/ },
    { name: 'tls cert alone', argv: ['--tls-cert', 'c.pem'], message: /^--tls-cert is set but --tls-key \(BINDLE_TLS_KEY\) is not/ },
    { name: 'tls key alone from env', env: { BINDLE_TLS_KEY: 'k.pem' }, message: /^environment variable BINDLE_TLS_KEY is set but --tls-cert/ },
    {
      name: 'oidc partial',
      argv: ['--oidc-issuer-url', 'https://i.test'],
      env: { BINDLE_OIDC_CLIENT_ID: 'c' },
      message: /given --oidc-issuer-url, environment variable BINDLE_OIDC_CLIENT_ID, missing --oidc-device-url/,
    },
    {
      name: 'oidc issuer not a url',
      argv: ['--oidc-issuer-url', 'issuer', '--oidc-client-id', 'c', '--oidc-device-url', 'https://i.test/d'],
      message: /^--oidc-issuer-url: "issuer" is not a URL/,
    },
    {
      name: 'oidc device url not http',
      file: 'oidc_issuer_url = "https://i.test"\noidc_client_id = "c"\noidc_device_url = "ftp://i.test/d"',
      message: /key "oidc_device_url": "ftp:\/\/i.test\/d" must be an http or https URL/,
    },
    { name: 'jwks without oidc', argv: ['--oidc-jwks-file', 'j.json'], message: /--oidc-jwks-file is set but OIDC is not/ },
    { name: 'env boolean', env: { BINDLE_UNAUTHENTICATED: 'maybe' }, message: /BINDLE_UNAUTHENTICATED: "maybe" is not a boolean/ },
    { name: 'file boolean type', file: 'unauthenticated = "yes"', message: /key "unauthenticated": expected true or false/ },
    { name: 'unknown file key', file: 'bogus = 1', message: /unknown key "bogus" \(known keys: address, / },
    { name: 'duplicate file keys', file: 'keyring = "a"\nkeyring_file = "b"', message: /"keyring" and "keyring_file" both set the same option/ },
    { name: 'empty path in file', file: 'directory = ""', message: /key "directory": must not be empty/ },
    { name: 'invalid TOML', file: 'address = ', message: /server\.toml is not valid TOML/ },
    { name: 'invalid TOML in one line', file: 'address = [', message: /server\.toml is not valid TOML: Unterminated inline array at row 1, col 13, pos 12$/ },
    { name: 'table in file', file: '[oidc]\nclientId = "x"', message: /unknown key "oidc"/ },
    { name: 'missing config file', argv: ['--config-path', 'absent.toml'], message: /cannot read config file .*absent\.toml \(from --config-path\)/ },
    { name: 'missing config file from env', env: { BINDLE_CONFIG_PATH: 'gone.toml' }, message: /from environment variable BINDLE_CONFIG_PATH/ },
    { name: 'unknown flag', argv: ['--bogus'], message: /unknown option '--bogus'/ },
    { name: 'flag without value', argv: ['--address'], message: /--address/ },
    { name: 'excess argument', argv: ['serve'], message: /^unexpected argument "serve": only options are accepted here/ },
    {
      name: 'unauthenticated with an authenticator',
      argv: ['--htpasswd-file', 'h'],
      env: { BINDLE_UNAUTHENTICATED: '1' },
      message: /^environment variable BINDLE_UNAUTHENTICATED conflicts with --htpasswd-file/,
    },
  ];
  for (const c of cases) {
    await t.rejects(load(t, c.argv ?? [], { env: c.env ?? {}, ...(c.file === undefined ? {} : { file: c.file }) }), {
      name: 'BindleError',
      code: 'invalid_config',
      message: c.message,
    }, c.name);
  }
});

t.test('reference flag spellings and the no-op --use-embedded-db', async (t) => {
  const { config, cwd } = await load(t, ['-i', '127.0.0.1:9', '-d', 'd', '-r', 'r.toml', '-c', 'c.pem', '-k', 'k.pem', '-e', '--signing-keys', 's.toml']);
  t.same(config.address, { host: '127.0.0.1', port: 9 });
  t.equal(config.keyringPath, resolve(cwd, 'r.toml'));
  t.equal(config.signingKeysPath, resolve(cwd, 's.toml'));
  t.same(config.tls, { certPath: resolve(cwd, 'c.pem'), keyPath: resolve(cwd, 'k.pem') });
});

t.test('--help and --version', async (t) => {
  const cwd = t.testdir({});
  const help = await parseServerInvocation(['--help'], {}, cwd);
  t.equal(help.kind, 'help');
  if (help.kind === 'help') {
    t.equal(help.text, serverHelp());
    for (const word of ['--address', 'BINDLE_IP_ADDRESS_PORT', '--htpasswd-file', '--token-file', '--oidc-jwks-file', 'bindle_directory', '--unauthenticated']) {
      t.match(help.text, word);
    }
  }
  t.same(await parseServerInvocation(['-h'], {}, cwd), help);
  t.same(await parseServerInvocation(['-V'], {}, cwd), { kind: 'version' });
  const serve = await parseServerInvocation(['--log-level', 'warn'], {}, cwd);
  t.equal(serve.kind, 'serve');
  await t.rejects(loadServerConfig(['--help'], {}, cwd), { code: 'invalid_config' });
});
