/**
 * The reference server's own HTTP tests (src/server/mod.rs), ported: the successful workflow,
 * yank, invoice and parcel validation, queries, missing parcels, host signing, anonymous GET
 * and bindle-keys. They run on our own vectors and on the reference's (skipped when absent).
 */
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { Invoice, InvoiceCreateReply, KeyRing, MissingReply, QueryReply } from '../../schema/index.js';
import { parseInvoice, renderInvoice } from '../../core/codec/invoice-codec.js';
import { signInvoice } from '../../core/signing/sign.js';
import { publicKeyOf } from '../../core/signing/keys.js';
import { AnonymousGetAuthorizer, HtpasswdAuthenticator } from '../../server/auth/index.js';
import { loadScaffold, creatorKey, creatorKeyring } from '../helpers/bindles.js';
import { VECTOR_SETS, type VectorSet } from '../helpers/paths.js';
import { makeTestApp as makeApp, storeInvoiceDirect, type TestApp, type TestAppOptions } from '../helpers/test-app.js';

const TOML_HEADERS = { 'content-type': 'application/toml' };

interface Replies {
  create: InvoiceCreateReply;
  query: QueryReply;
  missing: MissingReply;
  keys: KeyRing;
}

function toml<K extends keyof Replies>(_kind: K, body: string): Replies[K] {
  return TOML.parse(body) as unknown as Replies[K];
}

/** The reference server's tests against one vector set: the app trusts that set's creator key. */
function serverTests(t: Test, set: VectorSet): void {
  const makeTestApp = (t: Test, opts: TestAppOptions = {}): Promise<TestApp> => makeApp(t, { keyring: creatorKeyring(set), ...opts });

  t.test('successful workflow', async (t) => {
    const ta = await makeTestApp(t);
    const v1 = loadScaffold('valid_v1', set);
    let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: v1.invoiceText });
    t.equal(res.statusCode, 202, res.body);
    const created = toml('create', res.body);
    t.ok(created.missing !== undefined && created.missing.length > 0, 'invoice has missing parcels');

    for (const parcel of v1.parcels.values()) {
      res = await ta.app.inject({
        method: 'POST',
        url: `/v1/_i/${created.invoice.bindle.name}/${created.invoice.bindle.version}@${parcel.sha256}`,
        payload: parcel.data,
      });
      t.equal(res.statusCode, 200, res.body);
    }

    // Another invoice referencing the same parcel: everything is present → 201, no missing.
    const clone: Invoice = { ...v1.invoice, bindle: { ...v1.invoice.bindle, name: 'another.com/bindle', version: '1.0.0' } };
    delete clone.signature;
    const resigned = signInvoice(clone, 'creator', creatorKey(set));
    res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: renderInvoice(resigned) });
    t.equal(res.statusCode, 201, res.body);
    t.equal(toml('create', res.body).missing, undefined, 'no missing parcels');

    // A second version with one existing and one missing parcel.
    const v2 = loadScaffold('valid_v2', set);
    res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: v2.invoiceText });
    t.equal(res.statusCode, 202, res.body);
    t.equal(toml('create', res.body).missing?.length, 1, 'exactly one missing parcel');

    res = await ta.app.inject({ url: '/v1/_i/enterprise.com/warpcore/1.0.0' });
    t.equal(res.statusCode, 200, res.body);
    const inv = parseInvoice(res.body);
    const label = inv.parcel?.[0]?.label;
    if (label === undefined) throw new Error('invoice lost its parcel');
    res = await ta.app.inject({ url: `/v1/_i/enterprise.com/warpcore/1.0.0@${label.sha256}` });
    t.equal(res.statusCode, 200, res.body);
    t.same(res.rawPayload, v1.parcels.get('parcel')?.data);
    t.equal(res.headers['content-type'], label.mediaType);
  });

  t.test('yank', async (t) => {
    const ta = await makeTestApp(t);
    const scaffold = loadScaffold('incomplete', set);
    await storeInvoiceDirect(ta, scaffold.invoice);
    const path = '/v1/_i/enterprise.com/bridge/1.0.0';
    let res = await ta.app.inject({ method: 'DELETE', url: path });
    t.equal(res.statusCode, 200, res.body);
    res = await ta.app.inject({ url: path });
    t.equal(res.statusCode, 403, res.body);
    res = await ta.app.inject({ url: `${path}?yanked=true` });
    t.equal(res.statusCode, 200, res.body);
    t.equal(parseInvoice(res.body).yanked, true);
  });

  t.test('invoice validation: an existing invoice conflicts', async (t) => {
    const ta = await makeTestApp(t);
    const v1 = loadScaffold('valid_v1', set);
    await storeInvoiceDirect(ta, v1.invoice);
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: v1.invoiceText });
    t.equal(res.statusCode, 409, res.body);
  });

  t.test('parcel validation', async (t) => {
    const ta = await makeTestApp(t);
    const v1 = loadScaffold('valid_v1', set);
    await storeInvoiceDirect(ta, v1.invoice);
    const parcel = v1.parcels.get('parcel');
    if (parcel === undefined) throw new Error('scaffold parcel missing');
    const url = `/v1/_i/enterprise.com/warpcore/1.0.0@${parcel.sha256}`;
    let res = await ta.app.inject({ method: 'POST', url, payload: parcel.data });
    t.equal(res.statusCode, 200, res.body);
    res = await ta.app.inject({ method: 'POST', url, payload: parcel.data });
    t.equal(res.statusCode, 409, 'an existing parcel conflicts');

    const invalid = loadScaffold('invalid', set);
    await storeInvoiceDirect(ta, invalid.invoice);
    const bad = invalid.parcels.get('invalid_sha');
    if (bad === undefined) throw new Error('scaffold parcel missing');
    res = await ta.app.inject({ method: 'POST', url: `/v1/_i/enterprise.com/holodeck/1.0.0@${bad.sha256}`, payload: bad.data });
    t.equal(res.statusCode, 400, 'a parcel whose digest is not on the invoice is refused');
  });

  t.test('queries', async (t) => {
    const ta = await makeTestApp(t);
    for (const name of ['incomplete', 'valid_v1', 'valid_v2']) await storeInvoiceDirect(ta, loadScaffold(name, set).invoice);
    let res = await ta.app.inject({ url: '/v1/_q' });
    t.equal(res.statusCode, 200, res.body);
    t.equal(toml('query', res.body).invoices.length, 3, 'the empty query matches everything');
    res = await ta.app.inject({ url: '/v1/_q?q=enterprise.com/warpcore' });
    t.equal(res.statusCode, 200, res.body);
    const matches = toml('query', res.body);
    t.equal(matches.invoices.length, 2);
    t.equal(matches.query, 'enterprise.com/warpcore');
    for (const inv of matches.invoices) t.equal(inv.bindle.name, 'enterprise.com/warpcore');
    res = await ta.app.inject({ url: '/v1/_q?q=non/existent' });
    t.equal(res.statusCode, 200);
    t.same(toml('query', res.body).invoices ?? [], []);
  });

  t.test('missing', async (t) => {
    const ta = await makeTestApp(t);
    const scaffold = loadScaffold('lotsa_parcels', set);
    await storeInvoiceDirect(ta, scaffold.invoice);
    const parcel = scaffold.parcels.get('parcel');
    if (parcel === undefined) throw new Error('scaffold parcel missing');
    let res = await ta.app.inject({ method: 'POST', url: `/v1/_i/enterprise.com/cargobay/1.0.0@${parcel.sha256}`, payload: parcel.data });
    t.equal(res.statusCode, 200, res.body);
    res = await ta.app.inject({ url: '/v1/_r/missing/enterprise.com/cargobay/1.0.0' });
    t.equal(res.statusCode, 200, res.body);
    const missing = toml('missing', res.body).missing;
    t.equal(missing.length, 2);
    t.ok(missing.some((l) => l.name.includes('crate')));
    t.ok(missing.some((l) => l.name.includes('barrel')));
  });

  t.test('host signed', async (t) => {
    const ta = await makeTestApp(t);
    const v1 = loadScaffold('valid_v1', set);
    const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: v1.invoiceText });
    t.equal(res.statusCode, 202, res.body);
    const sigs = toml('create', res.body).invoice.signature ?? [];
    t.equal(sigs.length, 2, 'creator + host');
    const host = sigs.find((s) => s.role === 'host');
    t.equal(host?.key, publicKeyOf(ta.hostKey), 'signed with the server host key');
  });

  t.test('anonymous get', async (t) => {
    const ta = await makeTestApp(t, {
      authenticator: await HtpasswdAuthenticator.load(set.path('data', 'htpasswd')),
      authorizer: new AnonymousGetAuthorizer(),
    });
    const v1 = loadScaffold('valid_v1', set);
    let res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: TOML_HEADERS, payload: v1.invoiceText });
    t.equal(res.statusCode, 403, 'an anonymous write is not allowed');
    const auth = `Basic ${Buffer.from('admin:sw0rdf1sh').toString('base64')}`;
    res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { ...TOML_HEADERS, authorization: auth }, payload: v1.invoiceText });
    t.equal(res.statusCode, 202, res.body);
    res = await ta.app.inject({ url: '/v1/_i/enterprise.com/warpcore/1.0.0' });
    t.equal(res.statusCode, 200, 'anonymous GET allowed');
    res = await ta.app.inject({ url: '/v1/_q' });
    t.equal(res.statusCode, 200, 'anonymous query allowed');
  });

  t.test('bindle keys', async (t) => {
    const ta = await makeTestApp(t);
    let res = await ta.app.inject({ url: '/v1/bindle-keys' });
    t.equal(res.statusCode, 200, res.body);
    let ring = toml('keys', res.body);
    t.equal(ring.key?.length, 1, 'only the host key');
    t.same(ring.key?.[0]?.roles, ['host']);
    t.notMatch(res.body, /keypair/, 'never a secret');
    res = await ta.app.inject({ url: '/v1/bindle-keys?roles=host' });
    t.equal(res.statusCode, 200);
    ring = toml('keys', res.body);
    t.equal(ring.key?.length, 1);
    res = await ta.app.inject({ url: '/v1/bindle-keys?roles=creator' });
    t.equal(toml('keys', res.body).key?.length ?? 0, 0, 'no creator keys on the server');
    res = await ta.app.inject({ url: '/v1/bindle-keys?roles=bogus' });
    t.equal(res.statusCode, 400);
  });
}

for (const set of VECTOR_SETS) {
  t.test(`${set.name} vectors`, { skip: set.skip }, async (t) => serverTests(t, set));
}
