/**
 * OCI test helpers: pushing a bindle into an in-process app through `/v1` (as a publisher
 * would), reading OCI replies (the error envelope, manifests), and an authorizer that hides
 * some repositories (for mounts and the catalog).
 */
import type { Invoice } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { OciManifest } from '../../core/oci/index.js';
import { sha256, signedInvoice, type TestParcel } from './bindles.js';
import type { Action, Authorizer, Principal } from '../../server/auth/types.js';
import type { TestApp } from './test-app.js';

/** Reads of names under `secret/` only for principal `root`; everything else for everyone. */
export class SecretReads implements Authorizer {
  authorize(principal: Principal | undefined, action: Action, name?: string): void {
    if (action !== 'read' || name?.startsWith('secret/') !== true || principal?.id === 'root') return;
    if (principal === undefined) throw new BindleError('unauthenticated', `reading ${name} needs credentials`);
    throw new BindleError('forbidden', `${principal.id} may not read ${name}`);
  }
}

/** Creates a signed bindle with `parcels` through POST /v1/_i and uploads them; resolves with the stored TOML. */
export async function pushThroughV1(ta: TestApp, name: string, version: string, parcels: readonly TestParcel[], extra?: Partial<Invoice>): Promise<string> {
  const invoice = signedInvoice(name, version, parcels, extra === undefined ? {} : { extra });
  const created = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(invoice) });
  if (created.statusCode >= 300 && created.statusCode !== 202) throw new Error(`create failed: ${created.statusCode} ${created.body}`);
  for (const p of parcels) {
    const res = await ta.app.inject({ method: 'POST', url: `/v1/_i/${name}/${version}@${sha256(p.data)}`, payload: p.data });
    if (res.statusCode !== 200 && res.statusCode !== 409) throw new Error(`parcel upload failed: ${res.statusCode} ${res.body}`);
  }
  const stored = await ta.app.inject({ method: 'GET', url: `/v1/_i/${name}/${version}`, headers: { accept: 'application/toml' } });
  return stored.body;
}

/** The first error of an OCI error envelope. */
export function ociError(body: string): { code: string; message: string; detail?: { code?: string } } {
  const parsed = JSON.parse(body) as { errors: Array<{ code: string; message: string; detail?: { code?: string } }> };
  const first = parsed.errors[0];
  if (first === undefined) throw new Error(`no error in ${body}`);
  return first;
}

export function manifestOf(body: string | Buffer): OciManifest {
  return JSON.parse(body.toString()) as OciManifest;
}
