/**
 * Issue 11 item 7: whatever the strategy, a signature claiming one of the server's own keys is
 * verified, and no invoice is stored without the server's own valid host signature.
 */
import t, { type Test } from 'tap';
import TOML from '@iarna/toml';
import type { ErrorReply, Invoice, InvoiceCreateReply } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { publicKeyOf } from '../../core/signing/keys.js';
import { signInvoice } from '../../core/signing/sign.js';
import { verifySignature, type VerificationStrategy } from '../../core/signing/verification.js';
import { signedInvoice } from '../helpers/bindles.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';

const parcels = [{ name: 'a.txt', data: Buffer.from('alpha') }];
const STRATEGIES: VerificationStrategy[] = [
  { kind: 'CreativeIntegrity' },
  { kind: 'AuthoritativeIntegrity' },
  { kind: 'GreedyVerification' },
  { kind: 'ExhaustiveVerification' },
  { kind: 'MultipleAttestation', roles: ['creator'] },
];

function post(ta: TestApp, inv: Invoice) {
  return ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(inv) });
}

function withForgedHostSignature(ta: TestApp, inv: Invoice): Invoice {
  return {
    ...inv,
    signature: [
      ...(inv.signature ?? []),
      { by: 'Test Host <host@bindle.test>', key: publicKeyOf(ta.hostKey), role: 'host', signature: Buffer.alloc(64, 7).toString('base64'), at: 1 },
    ],
  };
}

/** The stored invoice must carry exactly one signature by the host key, in role host, that verifies. */
function assertHostSigned(t: Test, ta: TestApp, inv: Invoice): void {
  const own = (inv.signature ?? []).filter((s) => s.key === publicKeyOf(ta.hostKey));
  t.equal(own.length, 1, 'one signature by the host key');
  const [host] = own;
  if (host === undefined) return;
  t.equal(host.role, 'host');
  t.doesNotThrow(() => verifySignature(inv, host), 'the host signature verifies');
}

for (const strategy of STRATEGIES) {
  t.test(`${strategy.kind}: a forged host signature is refused and nothing is stored`, async (t) => {
    const ta = await makeTestApp(t, { strategy });
    const forged = withForgedHostSignature(ta, signedInvoice('example.com/forged', '1.0.0', parcels));
    const res = await post(ta, forged);
    t.equal(res.statusCode, 400, res.body);
    const error = TOML.parse(res.body) as unknown as ErrorReply;
    t.equal(error.code, 'unverified');
    t.match(error.error, /host/);
    const get = await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/forged/1.0.0' });
    t.equal(get.statusCode, 404, 'not stored');
  });
}

t.test('an invoice already validly host-signed by this server keeps that one signature', async (t) => {
  const ta = await makeTestApp(t, { strategy: { kind: 'CreativeIntegrity' } });
  const inv = signInvoice(signedInvoice('example.com/resigned', '1.0.0', parcels), 'host', ta.hostKey);
  const res = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/json', accept: 'application/json' }, payload: renderInvoice(inv, 'json'),
  });
  t.equal(res.statusCode, 202, res.body);
  assertHostSigned(t, ta, (JSON.parse(res.body) as InvoiceCreateReply).invoice);
});

t.test('an unsigned-by-host invoice is counter-signed with a valid host signature', async (t) => {
  const ta = await makeTestApp(t, { strategy: { kind: 'CreativeIntegrity' } });
  const res = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/json', accept: 'application/json' },
    payload: renderInvoice(signedInvoice('example.com/plain', '1.0.0', parcels), 'json'),
  });
  t.equal(res.statusCode, 202, res.body);
  assertHostSigned(t, ta, (JSON.parse(res.body) as InvoiceCreateReply).invoice);
});

t.test("the server's own key in another role is refused", async (t) => {
  const ta = await makeTestApp(t, { strategy: { kind: 'AuthoritativeIntegrity' } });
  const inv = signInvoice(signedInvoice('example.com/approver', '1.0.0', parcels), 'approver', ta.hostKey);
  const res = await post(ta, inv);
  t.equal(res.statusCode, 400, res.body);
  t.match(res.body, /signs only as host/);
});
