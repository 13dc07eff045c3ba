/**
 * How the kubelet reaches OCI registries: which ones speak plain HTTP (`--insecure-registry`)
 * and the credentials for each from a registry auth file in the containers/Docker format
 * (`{"auths": {"<host[:port]>": {"auth": "<base64 user:password>"}}}` or `username`/`password`
 * instead of `auth`), the file skopeo, podman and `docker login` write.
 */
import { readFile } from 'node:fs/promises';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { RegistryCredentials } from '../lib/oci-registry-client.js';
import type { RegistryAccess } from './module-store.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The credentials of one `auths` entry, or undefined when it has none usable. */
function entryCredentials(entry: unknown): RegistryCredentials | undefined {
  if (!isRecord(entry)) return undefined;
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return undefined;
    return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { user: entry.username, password: entry.password };
  return undefined;
}

/**
 * Parses a registry auth file's text into credentials by registry host (`https://` and a path
 * after the host, as `docker login` sometimes writes keys, are dropped). `invalid_config` when
 * it is not such a file.
 */
export function parseRegistryAuth(text: string, source: string): Map<string, RegistryCredentials> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new BindleError('invalid_config', `registry auth file ${source} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isRecord(doc) || (doc.auths !== undefined && !isRecord(doc.auths))) {
    throw new BindleError('invalid_config', `registry auth file ${source}: expected {"auths": {"<registry>": {"auth": "<base64 user:password>"}}}`);
  }
  const out = new Map<string, RegistryCredentials>();
  for (const [key, entry] of Object.entries(isRecord(doc.auths) ? doc.auths : {})) {
    const credentials = entryCredentials(entry);
    const host = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (credentials !== undefined && host !== '') out.set(host, credentials);
  }
  return out;
}

/** The store's RegistryAccess from the kubelet's options: the auth file (when given) is read once here. */
export async function loadRegistryAccess(opts: { insecure: readonly string[]; authFile: string | undefined; timeoutMs: number | undefined }): Promise<RegistryAccess> {
  let credentials = new Map<string, RegistryCredentials>();
  if (opts.authFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.authFile, 'utf8');
    } catch (err) {
      throw new BindleError('invalid_config', `cannot read the registry auth file ${opts.authFile}: ${err instanceof Error ? err.message : String(err)}`);
    }
    credentials = parseRegistryAuth(text, opts.authFile);
  }
  return {
    insecure: opts.insecure,
    credentials: (registry) => credentials.get(registry),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
}
