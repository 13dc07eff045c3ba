/**
 * The deployment files (docker-compose.yml, deploy/kustomize/**, Dockerfile) against the real
 * server: every flag and BINDLE_* variable they use is one the server accepts, the settings they
 * give load through the server's own config validation, and images, ports, probes, mounts and
 * kustomize references agree with each other.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { loadServerConfig, SERVER_OPTIONS } from '../../server/config/server-config.js';
import { DEFAULT_READINESS_DEADLINE_MS } from '../../server/service/readiness.js';
import { REPO_ROOT } from '../helpers/paths.js';

const IMAGE = 'bindle-ts:latest';
const FLAGS = new Set<string>(SERVER_OPTIONS.flatMap((o) => (o.short === undefined ? [o.flag] : [o.flag, o.short])));
const ENVS = new Set<string>(SERVER_OPTIONS.map((o) => o.env));
/** Variables read by libraries the server loads (the AWS SDK) rather than by its config. */
const OTHER_ENVS = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'NODE_ENV']);
/** What the HA overlay's `bindle-backends` Secret must hold, with example values. */
const BACKEND_SECRET_EXAMPLE: Record<string, string> = {
  BINDLE_INDEX: 'postgres://bindle:pw@postgres:5432/bindle',
  BINDLE_PARCELS: 's3://bindle-parcels/prod?region=eu-west-1',
  AWS_ACCESS_KEY_ID: 'id',
  AWS_SECRET_ACCESS_KEY: 'secret',
};

type Doc = Record<string, unknown>;

function loadYaml(path: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  return docs.map((d) => {
    if (d.errors.length > 0) throw new Error(`${path}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Doc;
  });
}

const obj = (v: unknown): Doc => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Doc) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

/** Checks that every flag in a command line is a server flag. */
function checkArgs(t: Test, where: string, args: string[]): void {
  for (const a of args) if (a.startsWith('-')) t.ok(FLAGS.has(a.split('=')[0] ?? a), `${where}: ${a} is a server flag`);
}

function checkEnv(t: Test, where: string, env: Record<string, string>): void {
  for (const name of Object.keys(env)) t.ok(ENVS.has(name) || OTHER_ENVS.has(name), `${where}: ${name} is read by the server`);
}

/** The port of a host:port listen address. */
const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/** True when `path` lies under one of the mount targets. */
const mounted = (path: string, mounts: string[]): boolean => mounts.some((m) => path === m || path.startsWith(`${m}/`));

t.test('docker-compose.yml', async (t) => {
  const [compose] = loadYaml(join(REPO_ROOT, 'docker-compose.yml'));
  const services = obj(compose?.services);
  const bindles = Object.entries(services).filter(([, s]) => str(obj(s).image) === IMAGE);
  t.ok(bindles.length >= 3, 'the default service and two HA replicas');
  t.ok(Object.entries(services).some(([name, s]) => name === 'bindle' && obj(s).profiles === undefined), 'the default service has no profile');
  const ha = Object.entries(services).filter(([, s]) => arr(obj(s).profiles).includes('ha')).map(([name]) => name);
  for (const needed of ['postgres', 's3']) t.ok(ha.includes(needed), `the ha profile has ${needed}`);
  t.ok(bindles.filter(([name]) => ha.includes(name)).length >= 2, 'the ha profile has two bindle replicas');
  const namedVolumes = Object.keys(obj(compose?.volumes));

  for (const [name, raw] of bindles) {
    const s = obj(raw);
    const args = arr(s.command).map(str);
    const env = Object.fromEntries(Object.entries(obj(s.environment)).map(([k, v]) => [k, str(v)]));
    checkArgs(t, name, args);
    checkEnv(t, name, env);
    const cwd = t.testdir();
    // The settings must pass the server's own validation (auth, address, backend specs...).
    const config = await loadServerConfig(args, { BINDLE_DIRECTORY: '/var/lib/bindle', ...env }, cwd);
    const port = config.address.port;
    t.ok(arr(s.ports).map(str).some((p) => p.endsWith(`:${port}`)), `${name}: publishes the listen port ${port}`);
    t.match(arr(obj(s.healthcheck).test).map(str).join(' '), new RegExp(`127\\.0\\.0\\.1:${port}/readyz`), `${name}: health check on /readyz`);
    const mounts = arr(s.volumes).map(str).map((v) => v.split(':')[1] ?? '');
    for (const v of arr(s.volumes).map(str)) {
      const source = v.split(':')[0] ?? '';
      if (!source.startsWith('.')) t.ok(namedVolumes.includes(source), `${name}: volume ${source} is declared`);
    }
    t.ok(mounted(config.keyringPath, mounts), `${name}: keyring ${config.keyringPath} is mounted`);
    t.ok(mounts.includes(dirname(config.keyringPath)), `${name}: the keyring's directory is mounted (not the file), so replacements are seen`);
    if (config.htpasswdFile !== undefined) t.ok(mounted(config.htpasswdFile, mounts), `${name}: htpasswd is mounted`);
    if (ha.includes(name)) {
      t.equal(config.index.kind, 'postgres', `${name}: shared index`);
      t.equal(config.parcels.kind, 's3', `${name}: shared parcels`);
      t.ok(mounted(config.signingKeysPath, mounts), `${name}: the host key file is mounted`);
      const s3 = config.parcels.kind === 's3' ? config.parcels : undefined;
      const endpointHost = new URL(s3?.endpoint ?? 'http://none').hostname;
      t.ok(ha.includes(endpointHost), `${name}: the S3 endpoint is the compose service ${endpointHost}`);
      const dbHost = config.index.kind === 'postgres' ? new URL(config.index.url).hostname : '';
      t.ok(ha.includes(dbHost), `${name}: the index is the compose service ${dbHost}`);
    } else {
      t.equal(config.index.kind, 'sqlite', `${name}: embedded index`);
      t.ok(mounted(config.directory, mounts), `${name}: the data directory is a volume`);
    }
  }
});

function kustomizeRefs(t: Test, dir: string): void {
  const [k] = loadYaml(join(dir, 'kustomization.yaml'));
  for (const ref of [...arr(k?.resources), ...arr(k?.patches).map((p) => obj(p).path)].map(str)) {
    const path = resolve(dir, ref);
    t.ok(existsSync(path), `${dir}: ${ref} exists`);
    if (existsSync(path) && statSync(path).isDirectory()) kustomizeRefs(t, path);
  }
  for (const gen of [...arr(k?.configMapGenerator), ...arr(k?.secretGenerator)]) {
    for (const file of arr(obj(gen).files).map(str)) t.ok(existsSync(join(dir, file.split('=').at(-1) ?? file)), `${dir}: generator file ${file} exists`);
  }
}

function docsOf(dir: string): Doc[] {
  return readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').flatMap((f) => loadYaml(join(dir, f)));
}

t.test('kustomize base and ha overlay', async (t) => {
  const base = join(REPO_ROOT, 'deploy', 'kustomize', 'base');
  const haDir = join(REPO_ROOT, 'deploy', 'kustomize', 'overlays', 'ha');
  kustomizeRefs(t, haDir);
  const baseDocs = docsOf(base);
  const deployment = baseDocs.find((d) => d.kind === 'Deployment');
  const spec = obj(deployment?.spec);
  t.equal(spec.replicas, 1, 'base: one replica');
  t.equal(obj(spec.strategy).type, 'Recreate', 'base: the volume changes hands only after the old pod stopped');
  const pod = obj(obj(spec.template).spec);
  const container = obj(arr(pod.containers)[0]);
  t.equal(container.image, IMAGE, 'the image compose builds');
  const env = Object.fromEntries(arr(container.env).map((e) => [str(obj(e).name), str(obj(e).value)]));
  checkEnv(t, 'base', env);
  checkArgs(t, 'base', arr(container.args).map(str));
  const ports = arr(container.ports).map(obj);
  const http = ports.find((p) => p.name === 'http');
  t.equal(Number(http?.containerPort), portOf(env.BINDLE_IP_ADDRESS_PORT ?? ''), 'the container port is the listen port');
  for (const [probe, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/livez']] as const) {
    const get = obj(obj(container[probe]).httpGet);
    t.same([get.path, get.port], [path, 'http'], `${probe} on ${path}`);
  }
  t.ok(Number(obj(container.readinessProbe).timeoutSeconds) * 1000 > DEFAULT_READINESS_DEADLINE_MS, 'the readiness probe waits longer than the server checks storage');
  const scrape = obj(obj(obj(spec.template).metadata).annotations);
  t.same([scrape['prometheus.io/path'], Number(scrape['prometheus.io/port'])], ['/metrics', Number(http?.containerPort)], 'Prometheus scrapes /metrics on the served port');
  const service = baseDocs.find((d) => d.kind === 'Service');
  t.ok(arr(obj(service?.spec).ports).some((p) => obj(p).targetPort === 'http'), 'the Service targets the http port');
  const mounts = arr(container.volumeMounts).map((m) => str(obj(m).mountPath));
  const volumes = arr(pod.volumes).map(obj);
  for (const m of arr(container.volumeMounts).map(obj)) t.ok(volumes.some((v) => v.name === m.name), `volume ${str(m.name)} is defined`);
  const pvcName = obj(baseDocs.find((d) => d.kind === 'PersistentVolumeClaim')?.metadata).name;
  t.ok(pvcName !== undefined && volumes.some((v) => obj(v.persistentVolumeClaim).claimName === pvcName), 'the data volume is the PVC');
  const baseConfig = await loadServerConfig([], env, t.testdir());
  t.ok(mounted(baseConfig.directory, mounts), 'base: the data directory is mounted');
  t.ok(mounts.includes(dirname(baseConfig.keyringPath)), 'base: the keyring directory is mounted (ConfigMap updates are seen)');
  t.ok(baseConfig.htpasswdFile !== undefined && mounted(baseConfig.htpasswdFile, mounts), 'base: htpasswd from the Secret');
  t.equal(baseConfig.index.kind, 'sqlite');

  // The overlay, applied by hand: its patch's env and mounts on top of the base.
  const haDocs = docsOf(haDir);
  const patch = haDocs.find((d) => d.kind === 'Deployment');
  t.equal(obj(patch?.spec).replicas, 3, 'ha: three replicas');
  const patchContainer = obj(arr(obj(obj(obj(patch?.spec).template).spec).containers)[0]);
  t.equal(patchContainer.name, container.name, 'ha: patches the base container');
  const haEnv = { ...env, ...Object.fromEntries(arr(patchContainer.env).map((e) => [str(obj(e).name), str(obj(e).value)])), ...BACKEND_SECRET_EXAMPLE };
  checkEnv(t, 'ha', haEnv);
  t.ok(arr(patchContainer.envFrom).some((e) => obj(obj(e).secretRef).name === 'bindle-backends'), 'ha: backends from a Secret');
  const haConfig = await loadServerConfig([], haEnv, t.testdir());
  t.equal(haConfig.index.kind, 'postgres');
  t.equal(haConfig.parcels.kind, 's3');
  const haMounts = [...mounts, ...arr(patchContainer.volumeMounts).map((m) => str(obj(m).mountPath))];
  t.ok(mounted(haConfig.signingKeysPath, haMounts), 'ha: the host key comes from a mounted Secret');
  const pdb = haDocs.find((d) => d.kind === 'PodDisruptionBudget');
  const minAvailable = Number(obj(pdb?.spec).minAvailable);
  t.ok(minAvailable >= 1 && minAvailable < 3, 'ha: the PodDisruptionBudget leaves room to drain one node');
  t.same(obj(obj(pdb?.spec).selector).matchLabels, { 'app.kubernetes.io/name': 'bindle-server' }, 'ha: the PDB selects the pods');
  const [kBase] = loadYaml(join(base, 'kustomization.yaml'));
  t.same(obj(arr(kBase?.labels)[0]).pairs, { 'app.kubernetes.io/name': 'bindle-server' }, 'the base labels the pods the PDB selects');
});

t.test('Dockerfile', async (t) => {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const env = Object.fromEntries([...text.matchAll(/\b(BINDLE_[A-Z_]+)=(\S+)/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
  checkEnv(t, 'Dockerfile', env);
  const port = portOf(env.BINDLE_IP_ADDRESS_PORT ?? '');
  t.match(text, new RegExp(`EXPOSE ${port}\\b`), 'exposes the listen port');
  t.match(text, new RegExp(`127\\.0\\.0\\.1:${port}/readyz`), 'health check on the listen port');
});
