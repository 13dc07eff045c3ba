/**
 * Packaging: no Docker engine runs here, so docker-compose.yml and the Dockerfile are checked
 * against the server's real flags: the command parses, and its port, data directory and health
 * check agree with the published port, the volume and the entry point.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseServerInvocation } from '../../server/config/server-config.js';
import { REPO_ROOT } from '../helpers/paths.js';

interface ComposeService {
  command: string[];
  ports: string[];
  volumes: string[];
  healthcheck: { test: string[] };
}

const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };

t.test('the compose command is a valid bindle-server invocation that agrees with ports and volumes', async (t) => {
  const service = compose.services.bindle;
  if (service === undefined) throw new Error('no bindle service');
  const invocation = await parseServerInvocation(service.command, {}, '/');
  if (invocation.kind !== 'serve') throw new Error(`compose command is not a serve invocation: ${invocation.kind}`);
  const { config } = invocation;
  const containerPorts = service.ports.map((p) => Number(p.split(':').at(-1)));
  t.ok(containerPorts.includes(config.address.port), `port ${config.address.port} is published`);
  t.equal(config.address.host, '0.0.0.0', 'listens on all interfaces inside the container');
  t.notOk(config.unauthenticated, 'a public address is served with authentication');
  const mounts = service.volumes.map((v) => v.split(':'));
  const dataMount = mounts.find(([, target]) => target === config.directory);
  t.ok(dataMount, `the data directory ${config.directory} is a mounted volume`);
  t.ok(dataMount !== undefined && dataMount[0] !== undefined && dataMount[0] in compose.volumes, 'a named, persistent volume');
  t.ok(config.htpasswdFile !== undefined && mounts.some(([, target]) => target === config.htpasswdFile), 'the htpasswd file is mounted');
  t.match(service.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${config.address.port}/readyz`), 'health check hits /readyz on the served port');
});

t.test('the Dockerfile runs the packaged entry point as a non-root user with data in a volume', async (t) => {
  t.match(dockerfile, /^FROM node:20/m, 'official Node image');
  t.match(dockerfile, /^USER node$/m, 'non-root');
  t.match(dockerfile, /^VOLUME \["\/var\/lib\/bindle"\]$/m);
  t.match(dockerfile, /BINDLE_DIRECTORY=\/var\/lib\/bindle/);
  const entry = pkg.bin['bindle-server'];
  t.ok(entry !== undefined && dockerfile.includes(`"${entry}"`), `ENTRYPOINT runs ${String(entry)}`);
  t.match(dockerfile, /npm ci/, 'installs from the lockfile');
});

t.test('the Dockerfile copies everything `npm run build` reads', async (t) => {
  const build = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  const scripts = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(' '));
  for (const dir of build.include) t.ok(copied.includes(dir), `copies ${dir}/ (compiled by tsc)`);
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) t.ok(copied.includes(file), `copies ${file}`);
  const nodeScripts = [...(scripts.scripts.build ?? '').matchAll(/node (\S+)/g)].map((m) => m[1] ?? '');
  t.ok(nodeScripts.length > 0, 'the build runs a bundling script');
  for (const script of nodeScripts) t.ok(copied.includes(script), `copies ${script} (run by npm run build)`);
});
