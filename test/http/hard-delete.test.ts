/**
 * Issue 15 item 5: hard delete. `DELETE /v1/_i/{name}/{version}?hard=true` (admin grant only)
 * removes the invoice and leaves a host-signed tombstone in the same index transaction; the id
 * then answers 410 `deleted` and cannot be created again unless an admin allows it
 * (`POST /v1/_i?allow_deleted=true`). The parcels stay until garbage collection.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { publicKeyOf } from '../../core/signing/keys.js';
import { AclAuthorizer, AnonymousGetAuthorizer, StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { verifyTombstone } from '../../server/service/tombstones.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';

const ACL = `
[[grant]]
to = ["alice"]
allow = ["push", "yank"]
on = ["example.com/"]

[[grant]]
to = ["root"]
allow = ["admin"]
on = [""]
`;
const TOKENS = `alice:${tokenDigest('alice-token')}\nroot:${tokenDigest('root-token')}\n`;
const data = Buffer.from('illegal content');
const invoice = renderInvoice(signedInvoice('example.com/app', '1.0.0', [{ name: 'a.txt', data }]));
const URL = '/v1/_i/example.com/app/1.0.0';

function as(who: string): Record<string, string> {
  return { authorization: `Bearer ${who}-token`, 'content-type': 'application/toml' };
}

function errorOf(body: string): ErrorReply {
  return TOML.parse(body) as unknown as ErrorReply;
}

async function setup(t: Test): Promise<TestApp> {
  const dir = t.testdir({ 'acl.toml': ACL });
  return makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(TOKENS, 'test'),
    authorizer: await AclAuthorizer.load(join(dir, 'acl.toml')),
  });
}

t.test('an admin deletes a bindle for good: 410 afterwards, a signed tombstone, parcels kept for gc', async (t) => {
  const ta = await setup(t);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: as('alice'), payload: invoice })).statusCode, 202);
  const parcelUrl = `${URL}@${sha256(data)}`;
  t.equal((await ta.app.inject({ method: 'POST', url: parcelUrl, headers: as('alice'), payload: data })).statusCode, 200);

  const refused = await ta.app.inject({ method: 'DELETE', url: `${URL}?hard=true`, headers: as('alice') });
  t.equal(refused.statusCode, 403, 'yank does not include hard delete');
  t.match(errorOf(refused.body).error, /alice lacks the admin grant on "example.com\/app"/);
  t.equal((await ta.app.inject({ method: 'DELETE', url: `${URL}?hard=true` })).statusCode, 403, 'nor may anyone anonymous');
  t.equal((await ta.app.inject({ method: 'GET', url: URL })).statusCode, 200, 'a refused delete deletes nothing');

  const deleted = await ta.app.inject({ method: 'DELETE', url: `${URL}?hard=true&reason=court%20order`, headers: as('root') });
  t.equal(deleted.statusCode, 200, deleted.body);
  for (const url of [URL, `${URL}?yanked=true`, parcelUrl]) {
    const res = await ta.app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 410, `${url} is gone`);
    t.equal(errorOf(res.body).code, 'deleted');
  }
  const query = await ta.app.inject({ method: 'GET', url: '/v1/_q?q=example.com/app&yanked=true' });
  t.equal((TOML.parse(query.body) as { total?: number }).total, 0, 'not in queries');
  t.equal(await ta.parcels.has(sha256(data)), true, 'the parcel stays until garbage collection');

  const tombstone = await ta.index.tombstone('example.com/app', '1.0.0');
  t.ok(tombstone, 'a tombstone is stored');
  if (tombstone !== undefined) {
    const record = verifyTombstone(tombstone, { name: 'example.com/app', version: '1.0.0' }, [publicKeyOf(ta.hostKey)]);
    t.match(record, { deletedBy: 'root', reason: 'court order', name: 'example.com/app', version: '1.0.0' });
    const forged = { ...tombstone, record: JSON.stringify({ ...record, reason: 'something else' }) };
    t.throws(() => verifyTombstone(forged, { name: 'example.com/app', version: '1.0.0' }, [publicKeyOf(ta.hostKey)]), { code: 'unverified' });
    t.throws(() => verifyTombstone(tombstone, { name: 'example.com/app', version: '1.0.0' }, []), { code: 'unverified' });
  }

  const again = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: as('alice'), payload: invoice });
  t.equal(again.statusCode, 410, 'a re-create is refused');
  t.equal(errorOf(again.body).code, 'deleted');
  t.match(errorOf(again.body).error, /allow_deleted=true/);
  const notAdmin = await ta.app.inject({ method: 'POST', url: '/v1/_i?allow_deleted=true', headers: as('alice'), payload: invoice });
  t.equal(notAdmin.statusCode, 403, 'only an admin may allow it');
  const allowed = await ta.app.inject({ method: 'POST', url: '/v1/_i?allow_deleted=true', headers: as('root'), payload: invoice });
  t.equal(allowed.statusCode, 201, `an admin re-creates it (its parcel is still stored): ${allowed.body}`);
  t.equal((await ta.app.inject({ method: 'GET', url: URL })).statusCode, 200);
  t.equal(await ta.index.tombstone('example.com/app', '1.0.0'), undefined, 'the tombstone is gone');
});

t.test('hard delete: errors', async (t) => {
  const ta = await setup(t);
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: as('alice'), payload: invoice })).statusCode, 202);
  const missing = await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/app/9.9.9?hard=true', headers: as('root') });
  t.equal(missing.statusCode, 404);
  const parcel = await ta.app.inject({ method: 'DELETE', url: `${URL}@${sha256(data)}?hard=true`, headers: as('root') });
  t.equal(parcel.statusCode, 405, 'parcels are not deleted one by one');
  const reason = await ta.app.inject({ method: 'DELETE', url: `${URL}?reason=x`, headers: as('root') });
  t.equal(reason.statusCode, 400, 'a reason without hard=true');
  t.equal((await ta.app.inject({ method: 'DELETE', url: `${URL}?hard=1`, headers: as('root') })).statusCode, 200, 'hard=1 is hard=true');
  const twice = await ta.app.inject({ method: 'DELETE', url: `${URL}?hard=true`, headers: as('root') });
  t.equal(twice.statusCode, 410, 'a second delete: already deleted');
  const yank = await ta.app.inject({ method: 'DELETE', url: URL, headers: as('root') });
  t.equal(yank.statusCode, 410, 'a yank of a deleted bindle');
});

t.test('without an ACL nobody holds the admin grant', async (t) => {
  const ta = await makeTestApp(t, { authenticator: StaticTokenAuthenticator.parse(TOKENS, 'test'), authorizer: new AnonymousGetAuthorizer() });
  t.equal((await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: as('root'), payload: invoice })).statusCode, 202);
  const res = await ta.app.inject({ method: 'DELETE', url: `${URL}?hard=true`, headers: as('root') });
  t.equal(res.statusCode, 403);
  t.match(errorOf(res.body).error, /lacks the admin grant/);
});
