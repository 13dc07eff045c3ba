/**
 * Issue 11 item 12: who may write what. With an ACL, pushing (invoice create, parcel upload)
 * and yanking need the grant on a prefix of the bindle's name; a refusal is 403 naming the
 * missing grant; every write, accepted or refused, is audited with the principal's id.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { AclAuthorizer, StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { recordingLogger, type LogRecord } from '../helpers/log-records.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';

const ACL = `
[groups]
release = ["bob"]

[[grant]]
to = ["alice"]
allow = ["push"]
on = ["example.com/alice/"]

[[grant]]
to = ["group:release"]
allow = ["admin"]
on = ["example.com/"]
`;
const TOKENS = `alice:${tokenDigest('alice-token')}\nbob:${tokenDigest('bob-token')}\neve:${tokenDigest('eve-token')}\n`;
const data = Buffer.from('alpha');
const parcels = [{ name: 'a.txt', data }];

function as(who: string): Record<string, string> {
  return { authorization: `Bearer ${who}-token`, 'content-type': 'application/toml' };
}

function createInvoice(ta: TestApp, who: string, name: string) {
  return ta.app.inject({ method: 'POST', url: '/v1/_i', headers: as(who), payload: renderInvoice(signedInvoice(name, '1.0.0', parcels)) });
}

async function setup(t: Test): Promise<{ ta: TestApp; records: LogRecord[] }> {
  const dir = t.testdir({ 'acl.toml': ACL });
  const { logger, records } = recordingLogger();
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(TOKENS, 'test'),
    authorizer: await AclAuthorizer.load(join(dir, 'acl.toml')),
    logger,
  });
  return { ta, records };
}

function errorOf(body: string): ErrorReply {
  return TOML.parse(body) as unknown as ErrorReply;
}

t.test('pushing needs the push grant on a prefix of the name', async (t) => {
  const { ta } = await setup(t);
  t.equal((await createInvoice(ta, 'alice', 'example.com/alice/app')).statusCode, 202, 'alice pushes under her prefix');
  const refused = await createInvoice(ta, 'alice', 'example.com/bob/app');
  t.equal(refused.statusCode, 403, refused.body);
  t.equal(errorOf(refused.body).code, 'forbidden');
  t.match(errorOf(refused.body).error, /alice lacks the push grant on "example.com\/bob\/app"/);
  t.equal((await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/bob/app/1.0.0' })).statusCode, 404, 'nothing stored');
  const eve = await createInvoice(ta, 'eve', 'example.com/eve/app');
  t.equal(eve.statusCode, 403, 'no grant, no default: eve may not push anywhere');
  t.equal((await createInvoice(ta, 'bob', 'example.com/bob/app')).statusCode, 202, 'a group grant');
});

t.test("yanking someone else's bindle needs the yank grant", async (t) => {
  const { ta } = await setup(t);
  t.equal((await createInvoice(ta, 'alice', 'example.com/alice/app')).statusCode, 202);
  const url = '/v1/_i/example.com/alice/app/1.0.0';
  const eve = await ta.app.inject({ method: 'DELETE', url, headers: as('eve') });
  t.equal(eve.statusCode, 403, eve.body);
  t.match(errorOf(eve.body).error, /eve lacks the yank grant/);
  const alice = await ta.app.inject({ method: 'DELETE', url, headers: as('alice') });
  t.equal(alice.statusCode, 403, 'push does not include yank');
  t.match(errorOf(alice.body).error, /alice lacks the yank grant on "example.com\/alice\/app"/);
  const bob = await ta.app.inject({ method: 'DELETE', url, headers: as('bob') });
  t.equal(bob.statusCode, 200, 'admin includes yank');
  const anonymous = await ta.app.inject({ method: 'DELETE', url });
  t.equal(anonymous.statusCode, 403);
});

t.test('uploading a parcel needs the push grant on the name', async (t) => {
  const { ta } = await setup(t);
  t.equal((await createInvoice(ta, 'alice', 'example.com/alice/app')).statusCode, 202);
  const url = `/v1/_i/example.com/alice/app/1.0.0@${sha256(data)}`;
  const eve = await ta.app.inject({ method: 'POST', url, headers: as('eve'), payload: data });
  t.equal(eve.statusCode, 403, eve.body);
  t.match(errorOf(eve.body).error, /eve lacks the push grant on "example.com\/alice\/app"/);
  t.equal((await ta.app.inject({ method: 'POST', url, headers: as('alice'), payload: data })).statusCode, 200);
  t.equal((await ta.app.inject({ method: 'GET', url })).statusCode, 200, 'anyone reads');
});

t.test('every write is audited with the principal and its outcome, refusals too; reads are not', async (t) => {
  const { ta, records } = await setup(t);
  const parcel = sha256(data);
  await createInvoice(ta, 'alice', 'example.com/alice/app');
  await createInvoice(ta, 'eve', 'example.com/eve/app');
  await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/alice/app/1.0.0@${parcel}`, headers: as('alice'), payload: data });
  await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/alice/app/1.0.0', headers: as('alice') });
  await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/alice/app/1.0.0', headers: as('bob') });
  await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/alice/app/1.0.0?hard=true', headers: as('bob') });
  await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/alice/app/1.0.0', headers: { authorization: 'Bearer wrong' } });
  await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/alice/app/1.0.0?yanked=true' });
  const audits = records.filter((r) => r.audit === true).map(({ principal, action, bindle, parcel, outcome, status }) => ({
    principal, action, bindle, parcel, outcome, status,
  }));
  t.same(audits, [
    { principal: 'alice', action: 'create', bindle: 'example.com/alice/app/1.0.0', parcel: null, outcome: 'success', status: 202 },
    { principal: 'eve', action: 'create', bindle: null, parcel: null, outcome: 'denied', status: 403 }, // refused before the body is read
    { principal: 'alice', action: 'upload', bindle: 'example.com/alice/app/1.0.0', parcel, outcome: 'success', status: 200 },
    { principal: 'alice', action: 'yank', bindle: 'example.com/alice/app/1.0.0', parcel: null, outcome: 'denied', status: 403 },
    { principal: 'bob', action: 'yank', bindle: 'example.com/alice/app/1.0.0', parcel: null, outcome: 'success', status: 200 },
    { principal: 'bob', action: 'delete', bindle: 'example.com/alice/app/1.0.0', parcel: null, outcome: 'success', status: 200 },
    { principal: null, action: 'yank', bindle: 'example.com/alice/app/1.0.0', parcel: null, outcome: 'denied', status: 401 },
  ]);
  t.ok(records.filter((r) => r.audit === true).every((r) => typeof r.msg === 'string' && r.msg.startsWith('audit: ')), 'one readable line each');
});

t.test('OCI upload sessions need the push grant on the name and nothing more: a pusher may cancel its session', async (t) => {
  const { ta, records } = await setup(t);
  const start = (who: string, name: string) =>
    ta.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/`, headers: { authorization: `Bearer ${who}-token` } });
  const opened = await start('alice', 'example.com/alice/app');
  t.equal(opened.statusCode, 202, opened.body);
  const location = String(opened.headers.location);
  const patched = await ta.app.inject({ method: 'PATCH', url: location, headers: { authorization: 'Bearer alice-token' }, payload: data });
  t.equal(patched.statusCode, 202, patched.body);
  const eve = await ta.app.inject({ method: 'DELETE', url: location, headers: { authorization: 'Bearer eve-token' } });
  t.equal(eve.statusCode, 403, 'a principal without the push grant may not cancel it');
  const elsewhere = await start('alice', 'example.com/bob/app');
  t.equal(elsewhere.statusCode, 403, 'nor may alice open one outside her prefix');
  const cancelled = await ta.app.inject({ method: 'DELETE', url: location, headers: { authorization: 'Bearer alice-token' } });
  t.equal(cancelled.statusCode, 204, `alice cancels her own session with her push grant: ${cancelled.body}`);
  const audit = records.filter((r) => r.audit === true && r.principal === 'alice' && r.status === 204);
  t.equal(audit.length, 1, 'the cancel is audited');
  t.not(audit[0]?.action, 'yank', 'a cancelled upload is not a yank');
});

t.test('a batch upload needs the push grant on the name, like a single upload', async (t) => {
  const { ta } = await setup(t);
  t.equal((await createInvoice(ta, 'bob', 'example.com/bob/app')).statusCode, 202);
  const boundary = 'zz';
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${sha256(data)}"; filename="a"\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const batch = (who: string) => ta.app.inject({
    method: 'POST', url: '/v1/_i/example.com/bob/app/1.0.0', payload,
    headers: { ...as(who), 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
  const alice = await batch('alice');
  t.equal(alice.statusCode, 403, alice.body);
  t.match(errorOf(alice.body).error, /alice lacks the push grant on "example.com\/bob\/app"/);
  t.notOk(await ta.parcels.has(sha256(data)), 'nothing stored');
  const bob = await batch('bob');
  t.equal(bob.statusCode, 200, bob.body);
  t.ok(await ta.parcels.has(sha256(data)), 'stored for the one with the grant');
});
